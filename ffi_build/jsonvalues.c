/* drasi_host._jsonvalues: a quick test that a Python value is a JSON value
 * made only of the exact built-in types (str, int, bool, None, finite
 * float, list, tuple, dict with str keys).
 *
 * is_json_value(value) answers True only when that holds; False means "not
 * certainly": the caller then asks drasi_host.payloads._is_encodable, which
 * also knows subclasses and decides.  No Python code runs during the walk
 * (exact types only, no comparisons, no hashing), so the borrowed references
 * stay valid.  Nesting deeper than DH_MAX_DEPTH answers False.
 *
 * Built for the stable ABI (Py_LIMITED_API 3.10), like the cffi modules. */

#include <Python.h>
#include <math.h>

#define DH_MAX_DEPTH 64

static int dh_plain(PyObject *v, int depth) {
    if (PyUnicode_CheckExact(v) || PyLong_CheckExact(v) || v == Py_None || PyBool_Check(v))
        return 1;
    if (PyFloat_CheckExact(v)) return isfinite(PyFloat_AsDouble(v));
    if (depth >= DH_MAX_DEPTH) return 0;
    if (PyDict_CheckExact(v)) {
        Py_ssize_t pos = 0;
        PyObject *key, *item;
        while (PyDict_Next(v, &pos, &key, &item)) {
            if (!PyUnicode_CheckExact(key) || !dh_plain(item, depth + 1)) return 0;
        }
        return 1;
    }
    if (PyList_CheckExact(v)) {
        Py_ssize_t n = PyList_Size(v);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *item = PyList_GetItem(v, i); /* borrowed */
            if (!item) {
                PyErr_Clear();
                return 0;
            }
            if (!dh_plain(item, depth + 1)) return 0;
        }
        return 1;
    }
    if (PyTuple_CheckExact(v)) {
        Py_ssize_t n = PyTuple_Size(v);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *item = PyTuple_GetItem(v, i); /* borrowed */
            if (!item) {
                PyErr_Clear();
                return 0;
            }
            if (!dh_plain(item, depth + 1)) return 0;
        }
        return 1;
    }
    return 0;
}

static PyObject *dh_is_json_value(PyObject *module, PyObject *value) {
    (void)module;
    return PyBool_FromLong(dh_plain(value, 0));
}

static PyMethodDef dh_methods[] = {
    {"is_json_value", dh_is_json_value, METH_O,
     "is_json_value(value, /)\n--\n\n"
     "True when value is a JSON value made of exact built-in types only (str, "
     "int, bool, None, finite float, list, tuple, dict with str keys), nested "
     "at most 64 deep; False when it is not, or not certainly."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef dh_module = {
    PyModuleDef_HEAD_INIT, "drasi_host._jsonvalues",
    "A quick JSON value test for the payload encoders.", -1, dh_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__jsonvalues(void) { return PyModule_Create(&dh_module); }
