/* The HTTP/1.1 wire format's hot path in C: the common request head in, the app's header
 * fields out.
 *
 * Both functions have a Python reference that the tests hold them to (see `wire.py`):
 *
 * parse_head(data, pos, max_head_size) reads one request head at data[pos:] when it is of the
 * plainest kind (HTTP/1.1, keep-alive, no body, no upgrade, an origin-form target, one valid
 * Host) and returns (end, method, target, headers); for anything else, or an incomplete head, it
 * returns None and the engine parses those bytes the full way (scanner.py, llhttp). It never
 * refuses a request: it only ever accepts what the full way would accept, the same way.
 *
 * frame_headers(headers) checks the app's response fields and joins them into lines, as
 * encode.py's Python twin does, with the same exceptions in the same order.
 *
 * frame_whole(...) makes the whole of the commonest response (one body message, a length the
 * encoder can state) in one bytes, as encode.py's ResponseEncoder.start would make it; for any
 * other it returns NotImplemented and the encoder frames it.
 *
 * make_scope(...) makes asgi.http_scope's dict for a target without percent-escapes, from a
 * template of it; for any other it returns NotImplemented and http_scope makes it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* RFC 9110 section 5.6.2 tchar. */
static unsigned char is_tchar[256];
/* A Host value's bytes (RFC 3986 reg-name: unreserved and sub-delims; "%" is handled apart). */
static unsigned char is_host_char[256];

static PyObject *method_objects[7];
static const char *const method_names[7] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};

static void init_tables(void)
{
    const char *tchar_extra = "!#$%&'*+-.^_`|~";
    const char *host_extra = "-._~!$&'()*+,;=";
    for (int c = '0'; c <= '9'; c++) is_tchar[c] = is_host_char[c] = 1;
    for (int c = 'a'; c <= 'z'; c++) is_tchar[c] = is_host_char[c] = 1;
    for (int c = 'A'; c <= 'Z'; c++) is_tchar[c] = is_host_char[c] = 1;
    for (const char *p = tchar_extra; *p; p++) is_tchar[(unsigned char)*p] = 1;
    for (const char *p = host_extra; *p; p++) is_host_char[(unsigned char)*p] = 1;
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Lower-case `name` equals the literal `lit` of length `n`. */
static int name_is(const char *name, Py_ssize_t len, const char *lit, Py_ssize_t n)
{
    if (len != n) return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 'A' && c <= 'Z') c += 32;
        if (c != (unsigned char)lit[i]) return 0;
    }
    return 1;
}

/* uri-host [":" port] with a reg-name host, as strict._valid_host reads it; an IP-literal
 * ("[") and an empty value are left to the full path. */
static int plain_host(const unsigned char *v, Py_ssize_t len)
{
    Py_ssize_t i = 0;
    if (len == 0 || v[0] == '[') return 0;
    while (i < len && v[i] != ':') {
        if (v[i] == '%') {
            if (i + 2 >= len || !is_hex(v[i + 1]) || !is_hex(v[i + 2])) return 0;
            i += 3;
        } else if (is_host_char[v[i]]) {
            i++;
        } else {
            return 0;
        }
    }
    if (i < len) {  /* ":" then digits */
        for (i++; i < len; i++)
            if (v[i] < '0' || v[i] > '9') return 0;
    }
    return 1;
}

static PyObject *parse_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "parse_head(data: bytes, pos: int, max_head_size: int)");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    Py_ssize_t max_head = PyLong_AsSsize_t(args[2]);
    if ((pos == -1 || max_head == -1) && PyErr_Occurred()) return NULL;
    if (max_head < 0) Py_RETURN_NONE;
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (pos < 0 || pos > size) {
        PyErr_SetString(PyExc_ValueError, "pos outside data");
        return NULL;
    }
    Py_ssize_t limit = size - pos < max_head ? size : pos + max_head;  /* the head ends by here */
    const unsigned char *p = data + pos, *end = data + limit;

    /* Request line: a known method, SP, an origin-form target, SP, HTTP/1.1, CRLF. */
    const unsigned char *space = memchr(p, ' ', (size_t)(end - p) < 8 ? (size_t)(end - p) : 8);
    if (space == NULL) Py_RETURN_NONE;
    PyObject *method = NULL;
    for (int m = 0; m < 7; m++) {
        size_t n = strlen(method_names[m]);
        if ((size_t)(space - p) == n && memcmp(p, method_names[m], n) == 0) {
            method = method_objects[m];
            break;
        }
    }
    if (method == NULL) Py_RETURN_NONE;
    const unsigned char *target = space + 1, *t = target;
    if (t >= end || *t != '/') Py_RETURN_NONE;
    while (t < end && *t >= 0x21 && *t <= 0x7e && *t != '#') t++;
    if (end - t < 11 || *t != ' ' || memcmp(t + 1, "HTTP/1.1\r\n", 10) != 0) Py_RETURN_NONE;
    Py_ssize_t target_len = t - target;
    p = t + 11;

    PyObject *headers = PyList_New(0);
    if (headers == NULL) return NULL;
    int hosts = 0;
    for (;;) {
        if (end - p < 2) goto decline;
        if (p[0] == '\r') {
            if (p[1] != '\n') goto decline;
            p += 2;
            break;
        }
        const unsigned char *name = p;
        while (p < end && is_tchar[*p]) p++;
        if (p == name || p >= end || *p != ':') goto decline;
        Py_ssize_t name_len = p - name;
        p++;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        const unsigned char *value = p;
        while (p < end && (*p == '\t' || (*p >= 0x20 && *p <= 0x7e))) p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') goto decline;
        const unsigned char *value_end = p;
        p += 2;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t')) value_end--;
        Py_ssize_t value_len = value_end - value;
        if (value_len == 0) goto decline;
        const char *n = (const char *)name;
        /* Fields that frame, switch or route the request go the full way; so does any
         * Connection but keep-alive (close makes llhttp refuse what follows it). */
        if (name_is(n, name_len, "host", 4)) {
            if (++hosts > 1 || !plain_host(value, value_len)) goto decline;
        } else if (name_is(n, name_len, "connection", 10)) {
            if (!name_is((const char *)value, value_len, "keep-alive", 10)) goto decline;
        } else if (name_is(n, name_len, "content-length", 14)
                   || name_is(n, name_len, "transfer-encoding", 17)
                   || name_is(n, name_len, "upgrade", 7) || name_is(n, name_len, "expect", 6)) {
            goto decline;
        }
        PyObject *lowered = PyBytes_FromStringAndSize(NULL, name_len);
        if (lowered == NULL) goto fail;
        char *out = PyBytes_AS_STRING(lowered);
        for (Py_ssize_t i = 0; i < name_len; i++) {
            unsigned char c = name[i];
            out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        PyObject *field_value = PyBytes_FromStringAndSize((const char *)value, value_len);
        if (field_value == NULL) {
            Py_DECREF(lowered);
            goto fail;
        }
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_DECREF(lowered);
            Py_DECREF(field_value);
            goto fail;
        }
        PyTuple_SET_ITEM(pair, 0, lowered);
        PyTuple_SET_ITEM(pair, 1, field_value);
        int appended = PyList_Append(headers, pair);
        Py_DECREF(pair);
        if (appended < 0) goto fail;
    }
    if (hosts != 1) goto decline;
    PyObject *target_bytes = PyBytes_FromStringAndSize((const char *)target, target_len);
    if (target_bytes == NULL) goto fail;
    PyObject *result = Py_BuildValue("(nONN)", (Py_ssize_t)(p - data), method, target_bytes, headers);
    return result;

decline:
    Py_DECREF(headers);
    Py_RETURN_NONE;
fail:
    Py_DECREF(headers);
    return NULL;
}

static int type_name_error(PyObject *exc, const char *format, PyObject *named, PyObject *object)
{
    PyObject *type_name = PyObject_GetAttrString((PyObject *)Py_TYPE(object), "__name__");
    if (type_name == NULL) return -1;
    if (named == NULL)
        PyErr_Format(exc, format, type_name);
    else
        PyErr_Format(exc, format, named, type_name);
    Py_DECREF(type_name);
    return -1;
}

/* `value` holds "close", any case. */
static int has_close(const char *value, Py_ssize_t len)
{
    for (Py_ssize_t i = 0; i + 5 <= len; i++)
        if (name_is(value + i, 5, "close", 5)) return 1;
    return 0;
}

/* `value` with ASCII whitespace stripped (bytes.strip()) is "chunked", any case. */
static int is_chunked(const char *value, Py_ssize_t len)
{
    const char *ws = " \t\n\r\x0b\x0c";
    Py_ssize_t start = 0;
    while (start < len && value[start] && strchr(ws, value[start])) start++;
    while (len > start && value[len - 1] && strchr(ws, value[len - 1])) len--;
    return name_is(value + start, len - start, "chunked", 7);
}

/* Appends `b`'s bytes at *out, within *left; 0 when they do not fit. */
static int put(char **out, Py_ssize_t *left, const char *b, Py_ssize_t n)
{
    if (n > *left) return 0;
    memcpy(*out, b, (size_t)n);
    *out += n;
    *left -= n;
    return 1;
}

/* The fields as "name: value" lines, but for Content-Length and Connection, which the encoder
 * writes itself, within *left. 0 when the list is no longer what was measured (an allocation
 * ran a collection, whose finalizer changed it) or its lines do not fit. */
static int put_fields(PyObject *headers, Py_ssize_t count, char **out, Py_ssize_t *left)
{
    if (PySequence_Fast_GET_SIZE(headers) != count) return 0;
    PyObject **items = PySequence_Fast_ITEMS(headers);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *header = items[i];
        if (!(PyTuple_CheckExact(header) || PyList_CheckExact(header))
                || PySequence_Fast_GET_SIZE(header) != 2)
            return 0;
        PyObject *name = PySequence_Fast_GET_ITEM(header, 0);
        PyObject *value = PySequence_Fast_GET_ITEM(header, 1);
        if (!PyBytes_CheckExact(name) || !PyBytes_CheckExact(value)) return 0;
        const char *n = PyBytes_AS_STRING(name);
        Py_ssize_t name_len = PyBytes_GET_SIZE(name);
        if (name_is(n, name_len, "content-length", 14) || name_is(n, name_len, "connection", 10))
            continue;
        if (!(put(out, left, n, name_len) && put(out, left, ": ", 2)
              && put(out, left, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
              && put(out, left, "\r\n", 2)))
            return 0;
    }
    return 1;
}

static PyObject *frame_headers(PyObject *module, PyObject *headers)
{
    if (!PyList_CheckExact(headers) && !PyTuple_CheckExact(headers))
        Py_RETURN_NOTIMPLEMENTED;  /* a generator or another iterable: the Python twin */
    Py_ssize_t count = PySequence_Fast_GET_SIZE(headers);
    PyObject **items = PySequence_Fast_ITEMS(headers);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *header = items[i];
        if (!(PyTuple_CheckExact(header) || PyList_CheckExact(header)))
            Py_RETURN_NOTIMPLEMENTED;
    }
    PyObject *content_length = NULL;  /* a strong reference (see the copy below) */
    int chunked = 0, close = 0, server = 0, date = 0, bad = 0;
    Py_ssize_t total = 0;
    /* The order of the checks is the Python twin's: pair, value type, name, meaning. */
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *header = items[i];
        if (PySequence_Fast_GET_SIZE(header) != 2) {
            PyErr_Format(PyExc_ValueError, "each header must be a [name, value] pair, got %R", header);
            goto error;
        }
        PyObject *name = PySequence_Fast_GET_ITEM(header, 0);
        PyObject *value = PySequence_Fast_GET_ITEM(header, 1);
        if (!PyBytes_CheckExact(value)) {
            type_name_error(PyExc_TypeError, "header %R: values must be bytes, got %S", name, value);
            goto error;
        }
        if (!PyBytes_CheckExact(name)) {
            type_name_error(PyExc_TypeError, "header names must be bytes, got %S", NULL, name);
            goto error;
        }
        const char *n = PyBytes_AS_STRING(name);
        Py_ssize_t name_len = PyBytes_GET_SIZE(name);
        if (name_len == 0) goto bad_name;
        for (Py_ssize_t k = 0; k < name_len; k++)
            if (!is_tchar[(unsigned char)n[k]]) goto bad_name;
        const char *v = PyBytes_AS_STRING(value);
        Py_ssize_t value_len = PyBytes_GET_SIZE(value);
        if (name_is(n, name_len, "content-length", 14)) {
            if (content_length != NULL) {
                /* Both are bytes: no Python code runs. */
                int same = PyObject_RichCompareBool(value, content_length, Py_EQ);
                if (same <= 0) {
                    if (same == 0)
                        PyErr_SetString(PyExc_ValueError, "conflicting Content-Length headers");
                    goto error;
                }
                continue;
            }
            Py_INCREF(value);
            content_length = value;
            continue;
        }
        if (name_is(n, name_len, "transfer-encoding", 17)) {
            if (!is_chunked(v, value_len) || chunked) {
                PyErr_SetString(PyExc_ValueError, "only 'Transfer-Encoding: chunked' can be sent");
                goto error;
            }
            chunked = 1;
        } else if (name_is(n, name_len, "connection", 10)) {
            if (has_close(v, value_len)) close = 1;
            continue;
        } else if (name_is(n, name_len, "server", 6)) {
            server = 1;
        } else if (name_is(n, name_len, "date", 4)) {
            date = 1;
        }
        for (Py_ssize_t k = 0; k < value_len; k++) {
            unsigned char c = (unsigned char)v[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f) bad = 1;
        }
        total += name_len + value_len + 4;
        continue;
    bad_name:
        PyErr_Format(PyExc_ValueError, "invalid header name %R", name);
        goto error;
    }
    PyObject *block = PyBytes_FromStringAndSize(NULL, total);
    if (block == NULL) goto error;
    /* Nothing above runs Python code but on an error; the allocation may run a collection,
     * and a finalizer could change the list: the copy is bounded by what was measured, and
     * a list changed under it is left to the Python twin. */
    char *out = PyBytes_AS_STRING(block);
    Py_ssize_t left = total;
    int changed = !put_fields(headers, count, &out, &left);
    if (changed || left != 0) {
        Py_DECREF(block);
        Py_XDECREF(content_length);
        Py_RETURN_NOTIMPLEMENTED;
    }
    if (content_length == NULL) content_length = Py_NewRef(Py_None);
    return Py_BuildValue("(NNiiiii)", block, content_length, chunked, close, server, date, bad);

error:
    Py_XDECREF(content_length);
    return NULL;
}

/* A Content-Length value of ASCII digits (bytes.isdigit()), as a number; -1 when it is not
 * one, or too long to be a body's length here. */
static Py_ssize_t digits_value(const char *v, Py_ssize_t len)
{
    if (len == 0 || len > 18) return -1;
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        n = n * 10 + (v[i] - '0');
    }
    return n;
}

/* frame_whole(headers, body, status_line, head_lines, date_line, keep_alive): the whole
 * response, head and body in one bytes, for the commonest one: a body the app sends in one
 * message, fields that need nothing of the encoder (no Transfer-Encoding, Connection: close,
 * Server or Date of the app's, no control byte) and a Content-Length, if any, that is the
 * body's. Anything else, a mistake of the app's included, returns NotImplemented: encode.py
 * then frames it, raising what it raises. */
static PyObject *frame_whole(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "frame_whole takes 6 arguments");
        return NULL;
    }
    PyObject *headers = args[0], *body = args[1];
    PyObject *status_line = args[2], *head_lines = args[3], *date_line = args[4];
    int keep_alive = PyObject_IsTrue(args[5]);
    if (keep_alive < 0) return NULL;
    if (!PyBytes_CheckExact(body) || !PyBytes_CheckExact(status_line)
            || !PyBytes_CheckExact(head_lines) || !PyBytes_CheckExact(date_line))
        Py_RETURN_NOTIMPLEMENTED;
    if (!PyList_CheckExact(headers) && !PyTuple_CheckExact(headers))
        Py_RETURN_NOTIMPLEMENTED;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(headers);
    PyObject **items = PySequence_Fast_ITEMS(headers);
    Py_ssize_t body_len = PyBytes_GET_SIZE(body);
    Py_ssize_t fields = 0;
    PyObject *content_length = NULL;  /* borrowed: nothing below runs Python code */
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *header = items[i];
        if (!(PyTuple_CheckExact(header) || PyList_CheckExact(header))
                || PySequence_Fast_GET_SIZE(header) != 2)
            Py_RETURN_NOTIMPLEMENTED;
        PyObject *name = PySequence_Fast_GET_ITEM(header, 0);
        PyObject *value = PySequence_Fast_GET_ITEM(header, 1);
        if (!PyBytes_CheckExact(name) || !PyBytes_CheckExact(value))
            Py_RETURN_NOTIMPLEMENTED;
        const char *n = PyBytes_AS_STRING(name);
        Py_ssize_t name_len = PyBytes_GET_SIZE(name);
        const char *v = PyBytes_AS_STRING(value);
        Py_ssize_t value_len = PyBytes_GET_SIZE(value);
        if (name_len == 0) Py_RETURN_NOTIMPLEMENTED;
        for (Py_ssize_t k = 0; k < name_len; k++)
            if (!is_tchar[(unsigned char)n[k]]) Py_RETURN_NOTIMPLEMENTED;
        if (name_is(n, name_len, "content-length", 14)) {
            if (content_length == NULL) {
                if (digits_value(v, value_len) != body_len) Py_RETURN_NOTIMPLEMENTED;
                content_length = value;
            } else if (value_len != PyBytes_GET_SIZE(content_length)
                       || memcmp(v, PyBytes_AS_STRING(content_length), (size_t)value_len) != 0) {
                Py_RETURN_NOTIMPLEMENTED;
            }
            continue;
        }
        if (name_is(n, name_len, "connection", 10)) {
            if (has_close(v, value_len)) Py_RETURN_NOTIMPLEMENTED;
            continue;
        }
        if (name_is(n, name_len, "transfer-encoding", 17) || name_is(n, name_len, "server", 6)
                || name_is(n, name_len, "date", 4))
            Py_RETURN_NOTIMPLEMENTED;
        for (Py_ssize_t k = 0; k < value_len; k++) {
            unsigned char c = (unsigned char)v[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f) Py_RETURN_NOTIMPLEMENTED;
        }
        fields += name_len + value_len + 4;
    }
    char length_digits[24];
    const char *length_text;
    Py_ssize_t length_len;
    if (content_length != NULL) {
        length_text = PyBytes_AS_STRING(content_length);
        length_len = PyBytes_GET_SIZE(content_length);
    } else {
        length_len = (Py_ssize_t)snprintf(length_digits, sizeof length_digits, "%zd", body_len);
        length_text = length_digits;
    }
    static const char close_end[] = "Connection: close\r\n\r\n";
    Py_ssize_t end_len = keep_alive ? 2 : (Py_ssize_t)(sizeof close_end - 1);
    Py_ssize_t total = PyBytes_GET_SIZE(status_line) + PyBytes_GET_SIZE(head_lines)
        + PyBytes_GET_SIZE(date_line) + fields + 16 + length_len + 2 + end_len + body_len;
    /* Held across the allocation, which may run a collection and so a finalizer. */
    Py_XINCREF(content_length);
    PyObject *made = PyBytes_FromStringAndSize(NULL, total);
    if (made == NULL) {
        Py_XDECREF(content_length);
        return NULL;
    }
    char *out = PyBytes_AS_STRING(made);
    Py_ssize_t left = total;
    int fits = put(&out, &left, PyBytes_AS_STRING(status_line), PyBytes_GET_SIZE(status_line))
        && put(&out, &left, PyBytes_AS_STRING(head_lines), PyBytes_GET_SIZE(head_lines))
        && put(&out, &left, PyBytes_AS_STRING(date_line), PyBytes_GET_SIZE(date_line));
    /* A list changed under it (by that finalizer) is left to encode.py, as frame_headers does. */
    fits = fits && put_fields(headers, count, &out, &left);
    fits = fits && put(&out, &left, "content-length: ", 16) && put(&out, &left, length_text, length_len)
        && put(&out, &left, "\r\n", 2)
        && put(&out, &left, keep_alive ? "\r\n" : close_end, end_len)
        && put(&out, &left, PyBytes_AS_STRING(body), body_len);
    Py_XDECREF(content_length);
    if (!fits || left != 0) {
        Py_DECREF(made);
        Py_RETURN_NOTIMPLEMENTED;
    }
    return made;
}

/* The scope keys make_scope sets, interned once (see PyInit__wire). */
static PyObject *key_server, *key_client, *key_scheme, *key_method, *key_path, *key_raw_path,
    *key_query_string, *key_headers, *key_state, *key_extensions;

/* make_scope(template, server, client, scheme, method, target, headers, lifespan_state,
 * extensions): asgi.http_scope's dict for a target with no percent-escape and no root path,
 * as a copy of `template` (asgi.http_scope with those keys' values still to set, in its
 * order) with the request's values set. Anything else returns NotImplemented. */
static PyObject *make_scope(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "make_scope takes 9 arguments");
        return NULL;
    }
    PyObject *template = args[0], *target = args[5], *lifespan_state = args[7];
    if (!PyDict_CheckExact(template) || !PyBytes_CheckExact(target)
            || !PyDict_CheckExact(lifespan_state))
        Py_RETURN_NOTIMPLEMENTED;
    const char *t = PyBytes_AS_STRING(target);
    Py_ssize_t len = PyBytes_GET_SIZE(target);
    if (memchr(t, '%', (size_t)len) != NULL) Py_RETURN_NOTIMPLEMENTED;  /* unquoted in Python */
    const char *mark = memchr(t, '?', (size_t)len);
    Py_ssize_t path_len = mark == NULL ? len : mark - t;
    PyObject *raw_path = NULL, *query = NULL, *path = NULL, *state = NULL, *scope = NULL;
    if (mark == NULL) {
        raw_path = Py_NewRef(target);
        query = PyBytes_FromStringAndSize(NULL, 0);
    } else {
        raw_path = PyBytes_FromStringAndSize(t, path_len);
        query = PyBytes_FromStringAndSize(mark + 1, len - path_len - 1);
    }
    if (raw_path == NULL || query == NULL) goto error;
    path = PyUnicode_DecodeLatin1(PyBytes_AS_STRING(raw_path), path_len, NULL);
    if (path == NULL) goto error;
    state = PyDict_Copy(lifespan_state);
    if (state == NULL) goto error;
    scope = PyDict_Copy(template);
    if (scope == NULL) goto error;
    if (PyDict_SetItem(scope, key_server, args[1]) < 0
            || PyDict_SetItem(scope, key_client, args[2]) < 0
            || PyDict_SetItem(scope, key_scheme, args[3]) < 0
            || PyDict_SetItem(scope, key_method, args[4]) < 0
            || PyDict_SetItem(scope, key_path, path) < 0
            || PyDict_SetItem(scope, key_raw_path, raw_path) < 0
            || PyDict_SetItem(scope, key_query_string, query) < 0
            || PyDict_SetItem(scope, key_headers, args[6]) < 0
            || PyDict_SetItem(scope, key_state, state) < 0
            || PyDict_SetItem(scope, key_extensions, args[8]) < 0)
        goto error;
    Py_DECREF(raw_path);
    Py_DECREF(query);
    Py_DECREF(path);
    Py_DECREF(state);
    return scope;

error:
    Py_XDECREF(raw_path);
    Py_XDECREF(query);
    Py_XDECREF(path);
    Py_XDECREF(state);
    Py_XDECREF(scope);
    return NULL;
}

static PyMethodDef wire_methods[] = {
    {"parse_head", (PyCFunction)(void (*)(void))parse_head, METH_FASTCALL,
     "parse_head(data, pos, max_head_size) -> (end, method, target, headers) or None"},
    {"frame_headers", (PyCFunction)frame_headers, METH_O,
     "frame_headers(headers) -> (lines, content_length, chunked, close, server, date, bad) or NotImplemented"},
    {"frame_whole", (PyCFunction)(void (*)(void))frame_whole, METH_FASTCALL,
     "frame_whole(headers, body, status_line, head_lines, date_line, keep_alive) -> bytes or NotImplemented"},
    {"make_scope", (PyCFunction)(void (*)(void))make_scope, METH_FASTCALL,
     "make_scope(template, server, client, scheme, method, target, headers, lifespan_state, extensions) -> dict or NotImplemented"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wire_module = {
    PyModuleDef_HEAD_INIT, "_wire", "The HTTP/1.1 wire format's hot path (see wire.py).", -1, wire_methods,
};

PyMODINIT_FUNC PyInit__wire(void)
{
    init_tables();
    for (int m = 0; m < 7; m++) {
        method_objects[m] = PyUnicode_InternFromString(method_names[m]);
        if (method_objects[m] == NULL) return NULL;
    }
    struct { PyObject **key; const char *name; } keys[] = {
        {&key_server, "server"}, {&key_client, "client"}, {&key_scheme, "scheme"},
        {&key_method, "method"}, {&key_path, "path"}, {&key_raw_path, "raw_path"},
        {&key_query_string, "query_string"}, {&key_headers, "headers"}, {&key_state, "state"},
        {&key_extensions, "extensions"},
    };
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        *keys[k].key = PyUnicode_InternFromString(keys[k].name);
        if (*keys[k].key == NULL) return NULL;
    }
    return PyModule_Create(&wire_module);
}
