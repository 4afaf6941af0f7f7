/*
 * wsgiws._speedups: optional C acceleration, used by wsgiws/_mask.py when built.
 *
 * apply_mask(data, mask, offset=0) -> bytes
 *
 * XOR of data with the 4-byte mask repeated, starting at key octet offset % 4
 * (RFC 6455 §5.3: payload octet i is XORed with key octet i MOD 4; offset is
 * how many payload octets of the frame came before data). Same contract and
 * exceptions as wsgiws._mask.python_apply_mask, which the tests check byte for
 * byte: data is any C-contiguous buffer (bytes, bytearray, memoryview...) and
 * is not modified; mask must be 4 bytes (ValueError); offset is any integer.
 *
 * Plain C99 against the Python C API; no other dependency. setup.py marks the
 * extension optional, so an install without a compiler falls back to Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

/* Above this size the XOR runs without the GIL, so that the threaded servers'
 * other connections keep running while a large frame is unmasked. Below it,
 * releasing and retaking the GIL would cost more than the loop. */
#define RELEASE_GIL_ABOVE (64 * 1024)

/* dst[i] = src[i] ^ key[i % 4] for i < n. dst and src do not overlap. */
static void
xor_mask(unsigned char *dst, const unsigned char *src, Py_ssize_t n, const unsigned char key[4])
{
    unsigned char key8[8];
    uint64_t key64, word;
    Py_ssize_t i = 0;

    /* The key twice, in memory order, loaded as one word: the XOR is then the
     * same on either byte order. */
    for (int j = 0; j < 8; j++) {
        key8[j] = key[j & 3];
    }
    memcpy(&key64, key8, 8);
    /* memcpy makes the unaligned loads and stores legal C; compilers emit
     * plain 8-byte moves for it (and often vectorize the loop). */
    for (; i + 8 <= n; i += 8) {
        memcpy(&word, src + i, 8);
        word ^= key64;
        memcpy(dst + i, &word, 8);
    }
    /* The tail starts at a multiple of 8, hence of 4: key octet i & 3. */
    for (; i < n; i++) {
        dst[i] = src[i] ^ key[i & 3];
    }
}

/* Get a C-contiguous byte buffer; TypeError otherwise, as Python's
 * memoryview(x).cast("B") raises for a non-buffer or non-contiguous one. */
static int
get_buffer(PyObject *obj, Py_buffer *view, const char *name)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) != 0) {
        PyErr_Format(PyExc_TypeError, "apply_mask() argument '%s' must be a C-contiguous "
                     "bytes-like object, not %.100s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    return 0;
}

/* offset % 4 (Python semantics, so in 0..3 for negative offsets too), or -1
 * with an exception set. Like operator.index(offset) % 4 in the Python one. */
static int
key_shift(PyObject *offset)
{
    PyObject *index, *four, *rem;
    long long value;
    int overflow, shift;

    index = PyNumber_Index(offset);
    if (index == NULL) {
        return -1;
    }
    value = PyLong_AsLongLongAndOverflow(index, &overflow);
    if (!overflow) {
        Py_DECREF(index);
        if (value == -1 && PyErr_Occurred()) {
            return -1;
        }
        return (int)(((value % 4) + 4) % 4);
    }
    /* Beyond 64 bits: let Python's int do it (rare, so not worth a cached 4). */
    four = PyLong_FromLong(4);
    rem = four == NULL ? NULL : PyNumber_Remainder(index, four);
    Py_XDECREF(four);
    Py_DECREF(index);
    if (rem == NULL) {
        return -1;
    }
    shift = (int)PyLong_AsLong(rem);
    Py_DECREF(rem);
    return shift;
}

static PyObject *
apply_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    /* Parsed by hand (METH_FASTCALL): PyArg_ParseTupleAndKeywords would build a
     * tuple per call, which is most of the cost of masking a small frame. */
    static const char *const names[3] = {"data", "mask", "offset"};
    PyObject *given[3] = {NULL, NULL, NULL};
    Py_buffer data, mask;
    unsigned char key[4];
    PyObject *result;
    int shift = 0;

    (void)module;
    if (nargs > 3) {
        PyErr_Format(PyExc_TypeError, "apply_mask() takes at most 3 arguments (%zd given)", nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        given[i] = args[i];
    }
    if (kwnames != NULL) {
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(kwnames); k++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, k);
            int j = 0;
            while (j < 3 && PyUnicode_CompareWithASCIIString(name, names[j]) != 0) {
                j++;
            }
            if (j == 3) {
                PyErr_Format(PyExc_TypeError,
                             "apply_mask() got an unexpected keyword argument '%U'", name);
                return NULL;
            }
            if (given[j] != NULL) {
                PyErr_Format(PyExc_TypeError,
                             "apply_mask() got multiple values for argument '%s'", names[j]);
                return NULL;
            }
            given[j] = args[nargs + k];
        }
    }
    if (given[0] == NULL || given[1] == NULL) {
        PyErr_Format(PyExc_TypeError, "apply_mask() missing required argument '%s'",
                     given[0] == NULL ? "data" : "mask");
        return NULL;
    }

    /* The same order of checks as the Python version: mask, offset, data. */
    if (get_buffer(given[1], &mask, "mask") < 0) {
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_Format(PyExc_ValueError, "mask must be 4 bytes, not %zd", mask.len);
        PyBuffer_Release(&mask);
        return NULL;
    }
    if (given[2] != NULL && (shift = key_shift(given[2])) < 0) {
        PyBuffer_Release(&mask);
        return NULL;
    }
    /* The key rotated so that key[0] applies to data[0]. */
    for (int j = 0; j < 4; j++) {
        key[j] = ((const unsigned char *)mask.buf)[(j + shift) & 3];
    }
    PyBuffer_Release(&mask);

    if (get_buffer(given[0], &data, "data") < 0) {
        return NULL;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result != NULL) {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
        if (data.len > RELEASE_GIL_ABOVE) {
            /* Safe without the GIL: result is ours alone, and the held buffer
             * stops a bytearray from being resized (BufferError) meanwhile. */
            Py_BEGIN_ALLOW_THREADS
            xor_mask(dst, data.buf, data.len, key);
            Py_END_ALLOW_THREADS
        }
        else {
            xor_mask(dst, data.buf, data.len, key);
        }
    }
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL | METH_KEYWORDS,
     "apply_mask(data, mask, offset=0)\n--\n\n"
     "Return data XORed with the 4-byte mask repeated, from key octet offset % 4\n"
     "(RFC 6455 section 5.3). See wsgiws._mask."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "wsgiws._speedups",
    "Optional C acceleration for wsgiws (see wsgiws._mask).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
