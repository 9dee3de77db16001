/* Optional compiled helper: walk pcap record headers (the one step per record that Python
 * cannot vectorise). analyzer/capture/reader.py falls back to Python when this is absent;
 * tests/test_walk.py checks that both give identical results. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static uint32_t rd32(const unsigned char *p, int big) {
    if (big)
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | (uint32_t)p[0];
}

/* walk_pcap(buffer, start, max_records, big_endian, limit)
 *   -> (offsets: bytes of int64, seconds, fractions, captured lengths: bytes of int64 each, next_offset)
 * Stops at max_records, at the end of the buffer, or before a record whose captured length
 * exceeds `limit` or runs past the end (the caller reports that damage). */
static PyObject *walk_pcap(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start, max_records;
    int big;
    unsigned long limit;
    if (!PyArg_ParseTuple(args, "y*nnik", &view, &start, &max_records, &big, &limit))
        return NULL;
    if (start < 0 || max_records < 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "negative start or count");
        return NULL;
    }
    PyObject *cols[4];
    int64_t *col[4];
    for (int i = 0; i < 4; i++) {
        cols[i] = PyBytes_FromStringAndSize(NULL, max_records * (Py_ssize_t)sizeof(int64_t));
        if (cols[i] == NULL) {
            for (int j = 0; j < i; j++)
                Py_DECREF(cols[j]);
            PyBuffer_Release(&view);
            return NULL;
        }
        col[i] = (int64_t *)PyBytes_AS_STRING(cols[i]);
    }
    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t len = view.len, off = start, n = 0;
    Py_BEGIN_ALLOW_THREADS
    while (n < max_records && off + 16 <= len) {
        uint32_t incl = rd32(buf + off + 8, big);
        if (incl > limit || (Py_ssize_t)incl > len - off - 16)
            break;
        col[0][n] = (int64_t)off;
        col[1][n] = (int64_t)rd32(buf + off, big);
        col[2][n] = (int64_t)rd32(buf + off + 4, big);
        col[3][n] = (int64_t)incl;
        n++;
        off += 16 + (Py_ssize_t)incl;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    for (int i = 0; i < 4; i++) {
        if (_PyBytes_Resize(&cols[i], n * (Py_ssize_t)sizeof(int64_t)) < 0) {
            for (int j = i + 1; j < 4; j++)
                Py_DECREF(cols[j]);
            return NULL;
        }
    }
    return Py_BuildValue("(NNNNn)", cols[0], cols[1], cols[2], cols[3], off);
}

static PyMethodDef methods[] = {
    {"walk_pcap", walk_pcap, METH_VARARGS, "Offsets of consecutive pcap record headers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_walk", NULL, -1, methods};

PyMODINIT_FUNC PyInit__walk(void) { return PyModule_Create(&module); }
