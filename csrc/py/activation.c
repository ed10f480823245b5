/* The elementwise entry points: relu, relu6, add and dropout, over activation.c and
 * dropout.c. */
#include "args.h"
#include "methods.h"

#include <math.h>

#include "activation.h"
#include "dropout.h"

static PyObject *clamp_forward_py(PyObject *args, PyObject *kw, const char *fn, float cap) {
    static char *kwlist[] = {"x", NULL};
    PyObject *x_obj;
    PyArrayObject *x = NULL, *y = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O", kwlist, &x_obj)) {
        return NULL;
    }
    if (!(x = input_f32_any(x_obj, fn, "x"))) {
        return NULL;
    }
    y = (PyArrayObject *)PyArray_SimpleNew(PyArray_NDIM(x), PyArray_DIMS(x), NPY_FLOAT32);
    if (y) {
        wt_status status;
        RUN_KERNEL(status, clamp_forward(f32(y), f32(x), PyArray_SIZE(x), cap));
        (void)status;
    }
    Py_DECREF(x);
    return (PyObject *)y;
}

static PyObject *clamp_backward_py(PyObject *args, PyObject *kw, const char *fn, float cap) {
    static char *kwlist[] = {"grad_out", "y", NULL};
    PyObject *dy_obj, *y_obj;
    PyArrayObject *dy = NULL, *y = NULL, *dx = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO", kwlist, &dy_obj, &y_obj)) {
        return NULL;
    }
    if (!(y = input_f32_any(y_obj, fn, "y")) || !(dy = input_f32_any(dy_obj, fn, "grad_out"))) {
        goto cleanup;
    }
    int ndim = PyArray_NDIM(y);
    if (expect_shape(dy, fn, "grad_out", ndim, PyArray_DIMS(y)) < 0 ||
        !(dx = (PyArrayObject *)PyArray_EMPTY(ndim, PyArray_DIMS(y), NPY_FLOAT32, 0))) {
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, clamp_backward(f32(dx), f32(dy), f32(y), PyArray_SIZE(y), cap));
    (void)status;
cleanup:
    Py_XDECREF(dy);
    Py_XDECREF(y);
    return (PyObject *)dx;
}

static PyObject *py_relu_forward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    return clamp_forward_py(args, kw, "relu_forward", INFINITY);
}

static PyObject *py_relu_backward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    return clamp_backward_py(args, kw, "relu_backward", INFINITY);
}

static PyObject *py_relu6_forward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    return clamp_forward_py(args, kw, "relu6_forward", 6.0f);
}

static PyObject *py_relu6_backward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    return clamp_backward_py(args, kw, "relu6_backward", 6.0f);
}

static PyObject *py_add(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "add";
    static char *kwlist[] = {"a", "b", NULL};
    PyObject *a_obj, *b_obj;
    PyArrayObject *a = NULL, *b = NULL, *y = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO:add", kwlist, &a_obj, &b_obj)) {
        return NULL;
    }
    if (!(a = input_f32_any(a_obj, fn, "a")) || !(b = input_f32_any(b_obj, fn, "b"))) {
        goto cleanup;
    }
    int ndim = PyArray_NDIM(a);
    if (expect_shape(b, fn, "b", ndim, PyArray_DIMS(a)) < 0 ||
        !(y = (PyArrayObject *)PyArray_SimpleNew(ndim, PyArray_DIMS(a), NPY_FLOAT32))) {
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, add_forward(f32(y), f32(a), f32(b), PyArray_SIZE(a)));
    (void)status;
cleanup:
    Py_XDECREF(a);
    Py_XDECREF(b);
    return (PyObject *)y;
}

static int check_probability(const char *fn, double p) {
    if (!(p >= 0.0 && p <= 1.0)) {
        value_error("%s: p: expected a probability in [0, 1], got %g", fn, p);
        return -1;
    }
    return 0;
}

static PyObject *py_dropout_forward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "dropout_forward";
    static char *kwlist[] = {"x", "p", "seed", NULL};
    PyObject *x_obj, *result = NULL;
    double p;
    unsigned long long seed;
    PyArrayObject *x = NULL, *y = NULL, *mask = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OdK:dropout_forward", kwlist, &x_obj, &p, &seed) ||
        check_probability(fn, p) < 0) {
        return NULL;
    }
    if (!(x = input_f32_any(x_obj, fn, "x"))) {
        goto cleanup;
    }
    int ndim = PyArray_NDIM(x);
    if (!(y = (PyArrayObject *)PyArray_SimpleNew(ndim, PyArray_DIMS(x), NPY_FLOAT32)) ||
        !(mask = (PyArrayObject *)PyArray_SimpleNew(ndim, PyArray_DIMS(x), NPY_UINT8))) {
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, dropout_forward(f32(y), (uint8_t *)PyArray_DATA(mask), f32(x),
                                       PyArray_SIZE(x), (float)p, (uint64_t)seed));
    if (check_status(status, fn) == 0) {
        result = PyTuple_Pack(2, y, mask);
    }
cleanup:
    Py_XDECREF(x);
    Py_XDECREF(y);
    Py_XDECREF(mask);
    return result;
}

static PyObject *py_dropout_backward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "dropout_backward";
    static char *kwlist[] = {"grad_out", "mask", "p", NULL};
    PyObject *dy_obj, *mask_obj;
    double p;
    PyArrayObject *dy = NULL, *mask = NULL, *dx = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOd:dropout_backward", kwlist, &dy_obj,
                                     &mask_obj, &p) ||
        check_probability(fn, p) < 0) {
        return NULL;
    }
    if (!(dy = input_f32_any(dy_obj, fn, "grad_out"))) {
        goto cleanup;
    }
    int ndim = PyArray_NDIM(dy);
    if (!PyArray_Check(mask_obj) || PyArray_TYPE((PyArrayObject *)mask_obj) != NPY_UINT8) {
        PyErr_Format(PyExc_TypeError, "%s: mask: expected the uint8 array dropout_forward returned",
                     fn);
        goto cleanup;
    }
    if (!(mask = (PyArrayObject *)PyArray_FROM_OTF(mask_obj, NPY_UINT8, NPY_ARRAY_IN_ARRAY)) ||
        expect_shape(mask, fn, "mask", ndim, PyArray_DIMS(dy)) < 0 ||
        !(dx = (PyArrayObject *)PyArray_ZEROS(ndim, PyArray_DIMS(dy), NPY_FLOAT32, 0))) {
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, dropout_backward(f32(dx), f32(dy), (uint8_t *)PyArray_DATA(mask),
                                        PyArray_SIZE(dy), (float)p));
    if (check_status(status, fn) < 0) {
        Py_CLEAR(dx);
    }
cleanup:
    Py_XDECREF(dy);
    Py_XDECREF(mask);
    return (PyObject *)dx;
}

PyMethodDef wt_activation_methods[] = {
    KW(relu_forward, "relu_forward(x) -> max(x, 0)."),
    KW(relu_backward, "relu_backward(grad_out, y) -> grad_in, y the forward output."),
    KW(relu6_forward, "relu6_forward(x) -> min(max(x, 0), 6)."),
    KW(relu6_backward, "relu6_backward(grad_out, y) -> grad_in, y the forward output."),
    KW(add, "add(a, b) -> a + b, same shapes."),
    KW(dropout_forward, "dropout_forward(x, p, seed) -> (y, mask uint8)."),
    KW(dropout_backward, "dropout_backward(grad_out, mask, p) -> grad_in."),
    {NULL, NULL, 0, NULL},
};
