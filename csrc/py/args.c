/* The argument helpers every boundary file shares: see args.h. */
#include "args.h"

#include <stdarg.h>
#include <stdio.h>

/* Writes dims as "(2, 3)", or "(4,)" for one dimension, into buf. */
static void format_dims(char *buf, size_t size, int ndim, const npy_intp *dims) {
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; i++) {
        used += (size_t)snprintf(buf + used, size - used, i + 1 < ndim ? "%lld, " : "%lld",
                                 (long long)dims[i]);
    }
    if (used < size) {
        snprintf(buf + used, size - used, ndim == 1 ? ",)" : ")");
    }
}

/* Not an array and nothing NumPy could make one from: strings and bytes are sequences, but
 * of characters. */
static int not_array_like(PyObject *obj) {
    return (!PyArray_Check(obj) && !PySequence_Check(obj)) || PyUnicode_Check(obj) ||
           PyBytes_Check(obj);
}

int expect_ndim(PyArrayObject *a, const char *fn, const char *name, int ndim,
                const char *layout) {
    if (PyArray_NDIM(a) == ndim) {
        return 0;
    }
    char shape[160];
    format_dims(shape, sizeof(shape), PyArray_NDIM(a), PyArray_DIMS(a));
    PyErr_Format(PyExc_ValueError, "%s: %s: expected a %d-D array%s%s, got shape %s", fn, name,
                 ndim, layout[0] ? " " : "", layout, shape);
    return -1;
}

PyArrayObject *input_f32(PyObject *obj, const char *fn, const char *name, int ndim,
                         const char *layout) {
    if (PyArray_Check(obj) && PyArray_TYPE((PyArrayObject *)obj) != NPY_FLOAT32) {
        PyErr_Format(PyExc_TypeError, "%s: %s: expected a float32 array, got dtype %s", fn, name,
                     PyArray_DESCR((PyArrayObject *)obj)->typeobj->tp_name);
        return NULL;
    }
    if (not_array_like(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: %s: expected a float32 numpy array, got %s", fn,
                     name, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_FLOAT32, NPY_ARRAY_IN_ARRAY);
    if (!a) {
        return NULL;
    }
    if (ndim >= 0 && expect_ndim(a, fn, name, ndim, layout) < 0) {
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

int optional_f32(PyArrayObject **out, PyObject *obj, const char *fn, const char *name, int ndim,
                 const char *layout) {
    if (obj == NULL || obj == Py_None) {
        *out = NULL;
        return 0;
    }
    *out = input_f32(obj, fn, name, ndim, layout);
    return *out ? 0 : -1;
}

PyArrayObject *inplace_f32(PyObject *obj, const char *fn, const char *name) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "%s: %s: expected a writeable C-contiguous float32 numpy array (it is "
                     "updated in place), got %s",
                     fn, name, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != NPY_FLOAT32) {
        PyErr_Format(PyExc_TypeError,
                     "%s: %s: expected a float32 array (it is updated in place), got dtype %s",
                     fn, name, PyArray_DESCR(a)->typeobj->tp_name);
        return NULL;
    }
    const char *refusal = NULL;
    if (!PyArray_ISNOTSWAPPED(a)) {
        refusal = "expected native byte order (it is updated in place), got a byte-swapped "
                  "array; pass arr.astype(np.float32) and keep that copy";
    } else if (!PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a)) {
        refusal = "expected a C-contiguous, aligned array (it is updated in place); pass "
                  "np.ascontiguousarray(...) and keep that copy";
    } else if (!PyArray_ISWRITEABLE(a)) {
        refusal = "expected a writeable array (it is updated in place), got a read-only one";
    }
    if (refusal) {
        PyErr_Format(PyExc_ValueError, "%s: %s: %s", fn, name, refusal);
        return NULL;
    }
    Py_INCREF(a);
    return a;
}

int optional_inplace_f32(PyArrayObject **out, PyObject *obj, const char *fn, const char *name) {
    if (obj == NULL || obj == Py_None) {
        *out = NULL;
        return 0;
    }
    *out = inplace_f32(obj, fn, name);
    return *out ? 0 : -1;
}

PyArrayObject *input_i64(PyObject *obj, const char *fn, const char *name, int ndim) {
    if (not_array_like(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: %s: expected an integer numpy array, got %s", fn,
                     name, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_NOTYPE, 0);
    if (!a) {
        return NULL;
    }
    if (!PyArray_ISINTEGER(a) && !(PyArray_SIZE(a) == 0 && PyArray_ISFLOAT(a))) {
        PyErr_Format(PyExc_TypeError, "%s: %s: expected an integer array, got dtype %s", fn,
                     name, PyArray_DESCR(a)->typeobj->tp_name);
        Py_DECREF(a);
        return NULL;
    }
    PyArrayObject *b = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)a, NPY_INT64,
                                                         NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    Py_DECREF(a);
    if (!b) {
        return NULL;
    }
    if (expect_ndim(b, fn, name, ndim, "") < 0) {
        Py_DECREF(b);
        return NULL;
    }
    return b;
}

int expect_shape(PyArrayObject *a, const char *fn, const char *name, int ndim,
                 const npy_intp *dims) {
    int same = PyArray_NDIM(a) == ndim;
    for (int i = 0; same && i < ndim; i++) {
        same = PyArray_DIM(a, i) == dims[i];
    }
    if (same) {
        return 0;
    }
    char got[160], want[160];
    format_dims(got, sizeof(got), PyArray_NDIM(a), PyArray_DIMS(a));
    format_dims(want, sizeof(want), ndim, dims);
    PyErr_Format(PyExc_ValueError, "%s: %s: expected shape %s, got %s", fn, name, want, got);
    return -1;
}

int is_integer(PyObject *obj) {
    return PyIndex_Check(obj) && !PyBool_Check(obj);
}

long long integer_value(PyObject *obj) {
    PyObject *index = PyNumber_Index(obj);
    long long v = index ? PyLong_AsLongLong(index) : -1;
    Py_XDECREF(index);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        v = MAX_HYPER + 1;
    }
    return v;
}

int parse_ints(PyObject *obj, const char *fn, const char *name, int64_t *out, int count,
               int64_t lo) {
    if (is_integer(obj)) {
        long long v = integer_value(obj);
        for (int i = 0; i < count; i++) {
            out[i] = v;
        }
    } else if (PySequence_Check(obj) && !PyUnicode_Check(obj) && PySequence_Size(obj) == count) {
        for (int i = 0; i < count; i++) {
            PyObject *item = PySequence_GetItem(obj, i);
            if (!item) {
                return -1;
            }
            if (!is_integer(item)) {
                PyErr_Format(PyExc_TypeError, "%s: %s: expected integers, got %s", fn, name,
                             Py_TYPE(item)->tp_name);
                Py_DECREF(item);
                return -1;
            }
            out[i] = integer_value(item);
            Py_DECREF(item);
        }
    } else {
        if (count == 1) {
            PyErr_Format(PyExc_TypeError, "%s: %s: expected an integer, got %R", fn, name, obj);
        } else {
            PyErr_Format(PyExc_TypeError, "%s: %s: expected an integer or %d integers, got %R",
                         fn, name, count, obj);
        }
        return -1;
    }
    for (int i = 0; i < count; i++) {
        if (out[i] < lo || out[i] > MAX_HYPER) {
            PyErr_Format(PyExc_ValueError, "%s: %s: expected values in [%lld, %d], got %R", fn,
                         name, (long long)lo, MAX_HYPER, obj);
            return -1;
        }
    }
    return 0;
}

int parse_shape4(PyObject *obj, const char *fn, const char *name, npy_intp dims[4]) {
    if (!PySequence_Check(obj) || PySequence_Size(obj) != 4) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: %s: expected a 4-tuple (N, C, H, W), got %R", fn,
                     name, obj);
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        PyObject *item = PySequence_GetItem(obj, i);
        if (!item) {
            return -1;
        }
        PyObject *index = is_integer(item) ? PyNumber_Index(item) : NULL;
        long long v = index ? PyLong_AsLongLong(index) : -1;
        Py_XDECREF(index);
        Py_DECREF(item);
        if (PyErr_Occurred() || v < 0 || v > ((long long)1 << 40)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError,
                         "%s: %s: expected 4 non-negative ints (N, C, H, W), got %R", fn, name,
                         obj);
            return -1;
        }
        dims[i] = (npy_intp)v;
    }
    return 0;
}

int check_size(const npy_intp *dims, int ndim, const char *fn, const char *what) {
    npy_intp total = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0 || (dims[i] > 0 && total > NPY_MAX_INTP / dims[i])) {
            PyErr_Format(PyExc_ValueError, "%s: %s would have too many elements", fn, what);
            return -1;
        }
        total *= dims[i];
    }
    return 0;
}

void value_error(const char *format, ...) {
    char msg[512];
    va_list args;
    va_start(args, format);
    vsnprintf(msg, sizeof(msg), format, args);
    va_end(args);
    PyErr_SetString(PyExc_ValueError, msg);
}

int expect_unit_interval(const char *fn, const char *name, const char *what, double v) {
    if (!(v >= 0.0 && v <= 1.0)) {
        value_error("%s: %s: expected %s in [0, 1], got %g", fn, name, what, v);
        return -1;
    }
    return 0;
}

int check_status(wt_status status, const char *fn) {
    if (status == WT_OK) {
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "%s: %s", fn, wt_status_string(status));
    return -1;
}

void release_arrays(PyArrayObject *const *arrays, size_t count) {
    for (size_t i = 0; i < count; i++) {
        Py_XDECREF(arrays[i]);
    }
}

float *alloc_workspace(size_t floats) {
    if (floats > (size_t)PY_SSIZE_T_MAX / sizeof(float)) {
        PyErr_NoMemory();
        return NULL;
    }
    float *ws = PyMem_RawMalloc((floats ? floats : 1) * sizeof(float));
    if (!ws) {
        PyErr_NoMemory();
    }
    return ws;
}

int expect_nonempty_chw(const npy_intp *xd, const char *fn, const char *name) {
    if (xd[1] >= 1 && xd[2] >= 1 && xd[3] >= 1) {
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "%s: %s: expected C, H and W >= 1, got (%lld, %lld, %lld, %lld)",
                 fn, name, (long long)xd[0], (long long)xd[1], (long long)xd[2], (long long)xd[3]);
    return -1;
}
