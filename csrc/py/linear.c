/* The fully connected layer's entry points, over linear.c. */
#include "args.h"
#include "methods.h"

#include "linear.h"

static PyObject *py_linear_forward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "linear_forward";
    static char *kwlist[] = {"x", "weight", "bias", NULL};
    PyObject *x_obj, *w_obj, *b_obj = Py_None, *result = NULL;
    PyArrayObject *x = NULL, *w = NULL, *b = NULL, *y = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:linear_forward", kwlist, &x_obj, &w_obj,
                                     &b_obj) ||
        !(x = input_f32(x_obj, fn, "x", 2, "(N, IN)")) ||
        !(w = input_f32(w_obj, fn, "weight", 2, "(OUT, IN)")) ||
        optional_f32(&b, b_obj, fn, "bias", 1, "(OUT,)") < 0) {
        goto cleanup;
    }
    npy_intp wd[2] = {PyArray_DIM(w, 0), PyArray_DIM(x, 1)}, bd[1] = {wd[0]};
    npy_intp yd[2] = {PyArray_DIM(x, 0), wd[0]};
    if (expect_shape(w, fn, "weight", 2, wd) < 0 ||
        (b && expect_shape(b, fn, "bias", 1, bd) < 0) || !(y = new_f32(2, yd))) {
        goto cleanup;
    }
    RUN_KERNEL_RETURN(result, fn,
                      linear_forward(f32(y), f32(x), f32(w), f32(b), yd[0], wd[1], wd[0]),
                      Py_NewRef(y));
cleanup:
    RELEASE(x, w, b, y);
    return result;
}

static PyObject *py_linear_backward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "linear_backward";
    static char *kwlist[] = {"grad_out", "x", "weight", "grad_weight", "grad_bias",
                             "need_input_grad", NULL};
    PyObject *dy_obj, *x_obj, *w_obj, *dw_obj = Py_None, *db_obj = Py_None, *result = NULL;
    int need_input_grad = 1;
    PyArrayObject *dy = NULL, *x = NULL, *w = NULL, *dw = NULL, *db = NULL, *dx = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|OOp:linear_backward", kwlist, &dy_obj,
                                     &x_obj, &w_obj, &dw_obj, &db_obj, &need_input_grad) ||
        !(dy = input_f32(dy_obj, fn, "grad_out", 2, "(N, OUT)")) ||
        !(x = input_f32(x_obj, fn, "x", 2, "(N, IN)")) ||
        !(w = input_f32(w_obj, fn, "weight", 2, "(OUT, IN)")) ||
        optional_inplace_f32(&dw, dw_obj, fn, "grad_weight") < 0 ||
        optional_inplace_f32(&db, db_obj, fn, "grad_bias") < 0) {
        goto cleanup;
    }
    const npy_intp n = PyArray_DIM(x, 0), in = PyArray_DIM(x, 1), out = PyArray_DIM(w, 0);
    npy_intp wd[2] = {out, in}, yd[2] = {n, out}, bd[1] = {out};
    if (expect_shape(w, fn, "weight", 2, wd) < 0 ||
        expect_shape(dy, fn, "grad_out", 2, yd) < 0 ||
        (dw && expect_shape(dw, fn, "grad_weight", 2, wd) < 0) ||
        (db && expect_shape(db, fn, "grad_bias", 1, bd) < 0) ||
        (need_input_grad && !(dx = zeros_f32(2, PyArray_DIMS(x))))) {
        goto cleanup;
    }
    RUN_KERNEL_RETURN(
        result, fn, linear_backward(f32(dx), f32(dw), f32(db), f32(dy), f32(x), f32(w), n, in, out),
        Py_NewRef(dx ? (PyObject *)dx : Py_None));
cleanup:
    RELEASE(dy, x, w, dw, db, dx);
    return result;
}

PyMethodDef wt_linear_methods[] = {
    KW(linear_forward, "linear_forward(x (N, IN), weight (OUT, IN), bias=None) -> y (N, OUT)."),
    KW(linear_backward, "linear_backward(grad_out, x, weight, grad_weight=None, grad_bias=None, "
                        "need_input_grad=True) -> grad_in or None; adds into grad_weight and "
                        "grad_bias."),
    {NULL, NULL, 0, NULL},
};
