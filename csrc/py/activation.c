/* The elementwise entry points: relu, relu6, add and dropout, over activation.c and
 * dropout.c. */
#include "args.h"
#include "methods.h"

#include <math.h>

#include "activation.h"
#include "dropout.h"

static PyObject *clamp_forward_py(PyObject *args, PyObject *kw, const char *fn, float cap) {
    static char *kwlist[] = {"x", NULL};
    PyObject *x_obj, *result = NULL;
    PyArrayObject *x = NULL, *y = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O", kwlist, &x_obj) ||
        !(x = input_f32_any(x_obj, fn, "x")) || !(y = new_f32(PyArray_NDIM(x), PyArray_DIMS(x)))) {
        goto cleanup;
    }
    RUN_KERNEL_RETURN(result, fn, clamp_forward(f32(y), f32(x), PyArray_SIZE(x), cap),
                      Py_NewRef(y));
cleanup:
    RELEASE(x, y);
    return result;
}

/* The two same-shaped inputs of an elementwise function, first converted first (its name
 * is the one a shape mismatch does not blame), and an output of their shape. 0, or -1 with
 * an exception set. */
static int same_shape_pair(const char *fn, PyObject *first_obj, const char *first_name,
                           PyObject *second_obj, const char *second_name, PyArrayObject **first,
                           PyArrayObject **second, PyArrayObject **out) {
    if (!(*first = input_f32_any(first_obj, fn, first_name)) ||
        !(*second = input_f32_any(second_obj, fn, second_name)) ||
        expect_shape(*second, fn, second_name, PyArray_NDIM(*first), PyArray_DIMS(*first)) < 0 ||
        !(*out = new_f32(PyArray_NDIM(*first), PyArray_DIMS(*first)))) {
        return -1;
    }
    return 0;
}

static PyObject *clamp_backward_py(PyObject *args, PyObject *kw, const char *fn, float cap) {
    static char *kwlist[] = {"grad_out", "y", NULL};
    PyObject *dy_obj, *y_obj, *result = NULL;
    PyArrayObject *dy = NULL, *y = NULL, *dx = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO", kwlist, &dy_obj, &y_obj) ||
        same_shape_pair(fn, y_obj, "y", dy_obj, "grad_out", &y, &dy, &dx) < 0) {
        goto cleanup;
    }
    RUN_KERNEL_RETURN(result, fn, clamp_backward(f32(dx), f32(dy), f32(y), PyArray_SIZE(y), cap),
                      Py_NewRef(dx));
cleanup:
    RELEASE(dy, y, dx);
    return result;
}

ENTRY_OF(relu_forward, clamp_forward_py, "relu_forward", INFINITY)
ENTRY_OF(relu_backward, clamp_backward_py, "relu_backward", INFINITY)
ENTRY_OF(relu6_forward, clamp_forward_py, "relu6_forward", 6.0f)
ENTRY_OF(relu6_backward, clamp_backward_py, "relu6_backward", 6.0f)

static PyObject *py_add(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "add";
    static char *kwlist[] = {"a", "b", NULL};
    PyObject *a_obj, *b_obj, *result = NULL;
    PyArrayObject *a = NULL, *b = NULL, *y = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO:add", kwlist, &a_obj, &b_obj) ||
        same_shape_pair(fn, a_obj, "a", b_obj, "b", &a, &b, &y) < 0) {
        goto cleanup;
    }
    RUN_KERNEL_RETURN(result, fn, add_forward(f32(y), f32(a), f32(b), PyArray_SIZE(a)),
                      Py_NewRef(y));
cleanup:
    RELEASE(a, b, y);
    return result;
}

static PyObject *py_dropout_forward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "dropout_forward";
    static char *kwlist[] = {"x", "p", "seed", NULL};
    PyObject *x_obj, *result = NULL;
    double p;
    unsigned long long seed;
    PyArrayObject *x = NULL, *y = NULL, *mask = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OdK:dropout_forward", kwlist, &x_obj, &p, &seed) ||
        expect_unit_interval(fn, "p", "a probability", p) < 0 ||
        !(x = input_f32_any(x_obj, fn, "x")) ||
        !(y = new_f32(PyArray_NDIM(x), PyArray_DIMS(x))) ||
        !(mask = (PyArrayObject *)PyArray_SimpleNew(PyArray_NDIM(x), PyArray_DIMS(x), NPY_UINT8))) {
        goto cleanup;
    }
    RUN_KERNEL_RETURN(result, fn,
                      dropout_forward(f32(y), (uint8_t *)PyArray_DATA(mask), f32(x),
                                      PyArray_SIZE(x), (float)p, (uint64_t)seed),
                      PyTuple_Pack(2, y, mask));
cleanup:
    RELEASE(x, y, mask);
    return result;
}

static PyObject *py_dropout_backward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "dropout_backward";
    static char *kwlist[] = {"grad_out", "mask", "p", NULL};
    PyObject *dy_obj, *mask_obj, *result = NULL;
    double p;
    PyArrayObject *dy = NULL, *mask = NULL, *dx = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOd:dropout_backward", kwlist, &dy_obj,
                                     &mask_obj, &p) ||
        expect_unit_interval(fn, "p", "a probability", p) < 0 ||
        !(dy = input_f32_any(dy_obj, fn, "grad_out"))) {
        goto cleanup;
    }
    if (!PyArray_Check(mask_obj) || PyArray_TYPE((PyArrayObject *)mask_obj) != NPY_UINT8) {
        PyErr_Format(PyExc_TypeError, "%s: mask: expected the uint8 array dropout_forward returned",
                     fn);
        goto cleanup;
    }
    const int ndim = PyArray_NDIM(dy);
    if (!(mask = (PyArrayObject *)PyArray_FROM_OTF(mask_obj, NPY_UINT8, NPY_ARRAY_IN_ARRAY)) ||
        expect_shape(mask, fn, "mask", ndim, PyArray_DIMS(dy)) < 0 ||
        !(dx = zeros_f32(ndim, PyArray_DIMS(dy)))) {
        goto cleanup;
    }
    RUN_KERNEL_RETURN(result, fn,
                      dropout_backward(f32(dx), f32(dy), (uint8_t *)PyArray_DATA(mask),
                                       PyArray_SIZE(dy), (float)p),
                      Py_NewRef(dx));
cleanup:
    RELEASE(dy, mask, dx);
    return result;
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
