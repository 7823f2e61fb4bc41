/* gateway's own access line in C: the one string made per response when the access log is on.
 *
 * line(prefix, scope, status, size, seconds, end) returns
 *     prefix + '127.0.0.1:50000 - "GET /path?q HTTP/1.1" 200 5B 0.4ms' + end
 * exactly as access._gateway_line makes it in Python, its twin and the reference the tests
 * hold it to, or NotImplemented for a scope it does not handle (no method, a client that is
 * not (host, port), a target or query with a byte outside printable ASCII, a field of another
 * type, text that cannot be UTF-8), which the twin then makes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static PyObject *key_method, *key_version, *key_client, *key_path, *key_query;

/* Printable ASCII only: what %s copies as it is, as latin-1 decoding would. */
static int printable(PyObject *bytes)
{
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(bytes);
    Py_ssize_t n = PyBytes_GET_SIZE(bytes);
    for (Py_ssize_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] > 0x7e) return 0;
    return 1;
}

/* Appends `n` bytes to the line being made; 0 when it would not fit. */
static int put(char **at, const char *stop, const char *text, Py_ssize_t n)
{
    if (n < 0 || stop - *at < n) return 0;
    memcpy(*at, text, (size_t)n);
    *at += n;
    return 1;
}

static int put_str(char **at, const char *stop, PyObject *text)
{
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
    return utf8 != NULL && put(at, stop, utf8, n);
}

/* The decimal digits of `value`, as %lld writes them, at the end of `digits` (24 bytes). */
static Py_ssize_t decimal(char *digits, long long value)
{
    char *at = digits + 24;
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    do {
        *--at = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (value < 0) *--at = '-';
    return digits + 24 - at;
}

static int put_int(char **at, const char *stop, PyObject *number)
{
    char digits[24];
    long long value = PyLong_AsLongLong(number);
    if (value == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    Py_ssize_t n = decimal(digits, value);
    return put(at, stop, digits + 24 - n, n);
}

/* `milliseconds` as "%.1f" writes it, into `text` (400 bytes); its length, or -1. Below a
 * million, away from a tie (where the product's rounding could cross it), the tenths are the
 * product by ten rounded to the nearest: the same digits without snprintf, a third of the
 * line's cost. Elsewhere snprintf, which rounds the exact binary value, as Python does. */
static int tenths(char *text, double milliseconds)
{
    if (!signbit(milliseconds) && milliseconds < 1e6) {
        double scaled = milliseconds * 10;
        double whole = floor(scaled);
        double fraction = scaled - whole;
        if (fabs(fraction - 0.5) > 1e-3) {
            long long count = (long long)whole + (fraction > 0.5);
            char digits[24];
            Py_ssize_t n = decimal(digits, count / 10);
            memcpy(text, digits + 24 - n, (size_t)n);
            text[n] = '.';
            text[n + 1] = (char)('0' + count % 10);
            return (int)n + 2;
        }
    }
    int n = snprintf(text, 400, "%.1f", milliseconds);
    return n < 0 || n >= 400 ? -1 : n;
}

#define LONGEST_LINE 4096

/* The line of the scope's values, each held by a reference of the caller's. */
static PyObject *make_line(PyObject *prefix, PyObject *method, PyObject *version, PyObject *client,
                           PyObject *path, PyObject *query, PyObject *status, PyObject *size,
                           PyObject *seconds, PyObject *end)
{
    if (method == NULL || !PyUnicode_CheckExact(method) || version == NULL || !PyUnicode_CheckExact(version))
        Py_RETURN_NOTIMPLEMENTED;
    if (path == Py_None) path = NULL;
    if (query == Py_None) query = NULL;
    if ((path != NULL && (!PyBytes_CheckExact(path) || !printable(path)))
        || (query != NULL && (!PyBytes_CheckExact(query) || !printable(query))))
        Py_RETURN_NOTIMPLEMENTED;
    PyObject *host = NULL, *port = NULL;
    if (client != NULL && client != Py_None) {
        if (!PyTuple_CheckExact(client) || PyTuple_GET_SIZE(client) != 2)
            Py_RETURN_NOTIMPLEMENTED;
        host = PyTuple_GET_ITEM(client, 0);
        port = PyTuple_GET_ITEM(client, 1);
        if (!PyUnicode_CheckExact(host) || !PyLong_CheckExact(port))
            Py_RETURN_NOTIMPLEMENTED;
    }
    char buffer[LONGEST_LINE];
    char *at = buffer;
    const char *stop = buffer + LONGEST_LINE;
    double milliseconds = PyFloat_AS_DOUBLE(seconds) * 1000;
    if (!isfinite(milliseconds))
        Py_RETURN_NOTIMPLEMENTED;  /* C writes a NaN's sign, Python does not */
    char ms[400];  /* the longest double in %.1f: 309 digits, a sign, a point, one decimal */
    int ms_len = tenths(ms, milliseconds);
    if (ms_len < 0)
        Py_RETURN_NOTIMPLEMENTED;
    int fits = put_str(&at, stop, prefix)
        && (host == NULL ? put(&at, stop, "-", 1)
            : put_str(&at, stop, host) && put(&at, stop, ":", 1) && put_int(&at, stop, port))
        && put(&at, stop, " - \"", 4) && put_str(&at, stop, method) && put(&at, stop, " ", 1)
        && (path == NULL || put(&at, stop, PyBytes_AS_STRING(path), PyBytes_GET_SIZE(path)))
        && (query == NULL || PyBytes_GET_SIZE(query) == 0
            || (put(&at, stop, "?", 1) && put(&at, stop, PyBytes_AS_STRING(query), PyBytes_GET_SIZE(query))))
        && put(&at, stop, " HTTP/", 6) && put_str(&at, stop, version) && put(&at, stop, "\" ", 2)
        && put_int(&at, stop, status) && put(&at, stop, " ", 1) && put_int(&at, stop, size)
        && put(&at, stop, "B ", 2) && put(&at, stop, ms, ms_len) && put(&at, stop, "ms", 2)
        && put_str(&at, stop, end);
    if (!fits) {
        /* A str that cannot be UTF-8 (a lone surrogate), or a line longer than LONGEST_LINE:
         * the twin makes it, as it would have without C. */
        PyErr_Clear();
        Py_RETURN_NOTIMPLEMENTED;
    }
    return PyUnicode_DecodeUTF8(buffer, at - buffer, NULL);
}

static PyObject *line(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "line(prefix, scope, status, size, seconds, end)");
        return NULL;
    }
    PyObject *prefix = args[0], *scope = args[1], *status = args[2], *size = args[3], *seconds = args[4];
    PyObject *end = args[5];
    if (!PyUnicode_CheckExact(prefix) || !PyDict_CheckExact(scope) || !PyLong_CheckExact(status)
        || !PyLong_CheckExact(size) || !PyFloat_CheckExact(seconds) || !PyUnicode_CheckExact(end))
        Py_RETURN_NOTIMPLEMENTED;
    /* Each value is held as soon as it is found: a later lookup may compare a key of the app's
     * with __eq__, which could take an earlier value out of the scope and free it. */
    PyObject *const keys[5] = {key_method, key_version, key_client, key_path, key_query};
    PyObject *found[5] = {NULL, NULL, NULL, NULL, NULL};
    PyObject *result = NULL;
    for (int i = 0; i < 5; i++) {
        found[i] = PyDict_GetItemWithError(scope, keys[i]);
        if (found[i] == NULL && PyErr_Occurred()) goto done;
        Py_XINCREF(found[i]);
    }
    result = make_line(prefix, found[0], found[1], found[2], found[3], found[4], status, size,
                       seconds, end);
done:
    for (int i = 0; i < 5; i++) Py_XDECREF(found[i]);
    return result;
}

static PyMethodDef accessline_methods[] = {
    {"line", (PyCFunction)(void (*)(void))line, METH_FASTCALL,
     "line(prefix, scope, status, size, seconds, end) -> str, or NotImplemented (see access.py)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef accessline_module = {
    PyModuleDef_HEAD_INIT, "_accessline", "gateway's own access line (see access.py).", -1,
    accessline_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__accessline(void)
{
    key_method = PyUnicode_InternFromString("method");
    key_version = PyUnicode_InternFromString("http_version");
    key_client = PyUnicode_InternFromString("client");
    key_path = PyUnicode_InternFromString("raw_path");
    key_query = PyUnicode_InternFromString("query_string");
    if (!key_method || !key_version || !key_client || !key_path || !key_query) return NULL;
    return PyModule_Create(&accessline_module);
}
