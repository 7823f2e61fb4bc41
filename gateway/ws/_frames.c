/* The commonest WebSocket frames a server reads, in C: whole, unfragmented text and binary
 * messages from a client, masked, without extension bits.
 *
 * parse_plain(buffer, position, max_size, events) reads frames from `position` for as long
 * as each is such a frame and lies whole in `buffer` (bytes or bytearray): it appends
 * (TEXT, str, True) or (BINARY, bytes, True) to `events` for each, exactly the events
 * frames.FrameConnection._parse makes of them, and returns where it stopped. It stops before
 * anything else (a control frame, a fragment, RSV bits, an unmasked frame, a frame larger
 * than `max_size` or not yet whole, text that is not UTF-8), which the Python parser, its
 * reference, then reads with every check and error of its own. It must only be called while
 * no fragmented message is under way (a text or binary frame then is an error).
 *
 * unmask(buffer, start, end) unmasks one frame's payload for the Python parser.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define TEXT 0x1
#define BINARY 0x2
#define STACK_TEXT 512

static PyObject *opcode_text, *opcode_binary;

/* `size` bytes of `from`, XORed with the 4-byte `mask` repeating, into `to`. */
static void unmask(unsigned char *to, const unsigned char *from, Py_ssize_t size,
                   const unsigned char *mask)
{
    Py_ssize_t i = 0;
    uint64_t wide;
    unsigned char pattern[8];
    memcpy(pattern, mask, 4);
    memcpy(pattern + 4, mask, 4);
    memcpy(&wide, pattern, 8);
    for (; i + 8 <= size; i += 8) {
        uint64_t chunk;
        memcpy(&chunk, from + i, 8);
        chunk ^= wide;
        memcpy(to + i, &chunk, 8);
    }
    for (; i < size; i++) to[i] = from[i] ^ mask[i & 3];
}

/* The payload as the event carries it: bytes for binary, str for text; NULL with no error
 * set when text is not UTF-8 (the Python parser then reports it), NULL with an error set
 * when memory ran out. */
static PyObject *payload_object(int opcode, const unsigned char *masked, Py_ssize_t size,
                                const unsigned char *mask)
{
    if (opcode == BINARY) {
        PyObject *payload = PyBytes_FromStringAndSize(NULL, size);
        if (payload != NULL) unmask((unsigned char *)PyBytes_AS_STRING(payload), masked, size, mask);
        return payload;
    }
    unsigned char stack[STACK_TEXT];
    unsigned char *plain = size <= STACK_TEXT ? stack : PyMem_Malloc((size_t)size);
    if (plain == NULL) return PyErr_NoMemory();
    unmask(plain, masked, size, mask);
    PyObject *text = PyUnicode_DecodeUTF8((const char *)plain, size, "strict");
    if (plain != stack) PyMem_Free(plain);
    if (text == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) PyErr_Clear();
    return text;
}

static PyObject *parse_plain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyList_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "parse_plain(buffer: bytes | bytearray, position: int, max_size: int, events: list)");
        return NULL;
    }
    Py_ssize_t position = PyLong_AsSsize_t(args[1]);
    Py_ssize_t max_size = PyLong_AsSsize_t(args[2]);
    if ((position == -1 || max_size == -1) && PyErr_Occurred()) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *data = view.buf;
    Py_ssize_t available = view.len;
    if (position < 0 || position > available) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "position outside buffer");
        return NULL;
    }
    PyObject *events = args[3];
    while (available - position >= 2) {
        const unsigned char *frame = data + position;
        int opcode = frame[0] & 0x0F;
        /* FIN, no RSV bit, text or binary; masked. */
        if ((frame[0] & 0xF0) != 0x80 || (opcode != TEXT && opcode != BINARY) || !(frame[1] & 0x80))
            break;
        Py_ssize_t size = frame[1] & 0x7F, header = 6, left = available - position;
        if (size == 126) {
            if (left < 4) break;
            size = ((Py_ssize_t)frame[2] << 8) | frame[3];
            if (size < 126) break;
            header = 8;
        } else if (size == 127) {
            if (left < 10 || frame[2] & 0x80) break;
            uint64_t length = 0;
            for (int i = 2; i < 10; i++) length = (length << 8) | frame[i];
            if (length < 65536 || length > (uint64_t)max_size) break;
            size = (Py_ssize_t)length;
            header = 14;
        }
        if (size > max_size || left - header < size) break;
        PyObject *payload = payload_object(opcode, frame + header, size, frame + header - 4);
        if (payload == NULL) {
            if (PyErr_Occurred()) goto error;
            break;  /* text that is not UTF-8 */
        }
        PyObject *event = PyTuple_New(3);
        if (event == NULL) {
            Py_DECREF(payload);
            goto error;
        }
        PyObject *kind = opcode == TEXT ? opcode_text : opcode_binary;
        Py_INCREF(kind);
        Py_INCREF(Py_True);
        PyTuple_SET_ITEM(event, 0, kind);
        PyTuple_SET_ITEM(event, 1, payload);
        PyTuple_SET_ITEM(event, 2, Py_True);
        int failed = PyList_Append(events, event);
        Py_DECREF(event);
        if (failed) goto error;
        position += header + size;
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(position);
error:
    PyBuffer_Release(&view);
    return NULL;
}

/* unmask(buffer, start, end): buffer[start:end] unmasked with the key buffer[start - 4:start],
 * as bytes; frames._unmask_py is its twin, for the frames parse_plain leaves to Python. */
static PyObject *unmask_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "unmask(buffer: bytes | bytearray, start: int, end: int)");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    Py_ssize_t end = PyLong_AsSsize_t(args[2]);
    if ((start == -1 || end == -1) && PyErr_Occurred()) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *payload = NULL;
    if (start < 4 || end < start || end > view.len) {
        PyErr_SetString(PyExc_ValueError, "the payload and its key must lie inside the buffer");
    } else {
        payload = PyBytes_FromStringAndSize(NULL, end - start);
        if (payload != NULL) {
            const unsigned char *data = view.buf;
            unmask((unsigned char *)PyBytes_AS_STRING(payload), data + start, end - start,
                   data + start - 4);
        }
    }
    PyBuffer_Release(&view);
    return payload;
}

static PyMethodDef frames_methods[] = {
    {"parse_plain", (PyCFunction)(void (*)(void))parse_plain, METH_FASTCALL,
     "parse_plain(buffer, position, max_size, events) -> position where it stopped"},
    {"unmask", (PyCFunction)(void (*)(void))unmask_frame, METH_FASTCALL,
     "unmask(buffer, start, end) -> buffer[start:end] unmasked with buffer[start - 4:start]"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef frames_module = {
    PyModuleDef_HEAD_INIT, "_frames", "The commonest WebSocket frames a server reads (see frames.py).",
    -1, frames_methods,
};

PyMODINIT_FUNC PyInit__frames(void)
{
    opcode_text = PyLong_FromLong(TEXT);
    opcode_binary = PyLong_FromLong(BINARY);
    if (opcode_text == NULL || opcode_binary == NULL) return NULL;
    return PyModule_Create(&frames_module);
}
