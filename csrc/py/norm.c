/* The batch norm entry points: training and evaluation forward, and backward, over
 * batchnorm.c. */
#include "args.h"
#include "methods.h"

#include <math.h>

#include "batchnorm.h"

/* Checks that each non-NULL per-channel array has shape (c,). */
static int expect_channels(const char *fn, npy_intp c, PyArrayObject *const *arrays,
                           const char *const *names, int count) {
    npy_intp cd[1] = {c};
    for (int i = 0; i < count; i++) {
        if (arrays[i] && expect_shape(arrays[i], fn, names[i], 1, cd) < 0) {
            return -1;
        }
    }
    return 0;
}

static int check_eps(const char *fn, double eps) {
    if (!(eps > 0.0) || !isfinite(eps)) {
        value_error("%s: eps: expected a positive number, got %g", fn, eps);
        return -1;
    }
    return 0;
}

/* What both forward entry points check: x's C, H and W >= 1, and each of the (C,) vectors
 * that is present. 0, or -1 with ValueError. */
static int expect_forward_shapes(const char *fn, PyArrayObject *x, PyArrayObject *w,
                                 PyArrayObject *b, PyArrayObject *rm, PyArrayObject *rv) {
    static const char *const names[4] = {"weight", "bias", "running_mean", "running_var"};
    PyArrayObject *const per_channel[4] = {w, b, rm, rv};
    if (expect_nonempty_chw(PyArray_DIMS(x), fn, "x") < 0) {
        return -1;
    }
    return expect_channels(fn, PyArray_DIM(x, 1), per_channel, names, 4);
}

static PyObject *py_batch_norm2d_forward_train(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "batch_norm2d_forward_train";
    static char *kwlist[] = {"x", "weight", "bias", "running_mean", "running_var", "momentum",
                             "eps", NULL};
    PyObject *x_obj, *w_obj = Py_None, *b_obj = Py_None, *rm_obj = Py_None, *rv_obj = Py_None;
    PyObject *result = NULL;
    double momentum = 0.1, eps = 1e-5;
    PyArrayObject *x = NULL, *w = NULL, *b = NULL, *rm = NULL, *rv = NULL;
    PyArrayObject *y = NULL, *mean = NULL, *invstd = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOOOdd:batch_norm2d_forward_train", kwlist,
                                     &x_obj, &w_obj, &b_obj, &rm_obj, &rv_obj, &momentum, &eps) ||
        check_eps(fn, eps) < 0 || expect_unit_interval(fn, "momentum", "a number", momentum) < 0 ||
        !(x = input_f32(x_obj, fn, "x", 4, "(N, C, H, W)")) ||
        optional_f32(&w, w_obj, fn, "weight", 1, "(C,)") < 0 ||
        optional_f32(&b, b_obj, fn, "bias", 1, "(C,)") < 0 ||
        optional_inplace_f32(&rm, rm_obj, fn, "running_mean") < 0 ||
        optional_inplace_f32(&rv, rv_obj, fn, "running_var") < 0 ||
        expect_forward_shapes(fn, x, w, b, rm, rv) < 0) {
        goto cleanup;
    }
    const npy_intp *xd = PyArray_DIMS(x);
    if (xd[0] * xd[2] * xd[3] < 2) {
        PyErr_Format(PyExc_ValueError,
                     "%s: expected more than 1 value per channel when training, got input shape "
                     "(%lld, %lld, %lld, %lld)",
                     fn, (long long)xd[0], (long long)xd[1], (long long)xd[2], (long long)xd[3]);
        goto cleanup;
    }
    npy_intp cd[1] = {xd[1]};
    if (!(y = new_f32(4, xd)) || !(mean = new_f32(1, cd)) || !(invstd = new_f32(1, cd))) {
        goto cleanup;
    }
    RUN_KERNEL_RETURN(result, fn,
                      batchnorm2d_forward_train(f32(y), f32(mean), f32(invstd), f32(rm), f32(rv),
                                                f32(x), f32(w), f32(b), xd[0], xd[1], xd[2] * xd[3],
                                                (float)momentum, (float)eps),
                      PyTuple_Pack(3, y, mean, invstd));
cleanup:
    RELEASE(x, w, b, rm, rv, y, mean, invstd);
    return result;
}

static PyObject *py_batch_norm2d_forward_eval(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "batch_norm2d_forward_eval";
    static char *kwlist[] = {"x", "weight", "bias", "running_mean", "running_var", "eps", NULL};
    PyObject *x_obj, *w_obj, *b_obj, *rm_obj, *rv_obj, *result = NULL;
    double eps = 1e-5;
    PyArrayObject *x = NULL, *w = NULL, *b = NULL, *rm = NULL, *rv = NULL, *y = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO|d:batch_norm2d_forward_eval", kwlist,
                                     &x_obj, &w_obj, &b_obj, &rm_obj, &rv_obj, &eps) ||
        check_eps(fn, eps) < 0 ||
        !(x = input_f32(x_obj, fn, "x", 4, "(N, C, H, W)")) ||
        !(rm = input_f32(rm_obj, fn, "running_mean", 1, "(C,)")) ||
        !(rv = input_f32(rv_obj, fn, "running_var", 1, "(C,)")) ||
        optional_f32(&w, w_obj, fn, "weight", 1, "(C,)") < 0 ||
        optional_f32(&b, b_obj, fn, "bias", 1, "(C,)") < 0 ||
        expect_forward_shapes(fn, x, w, b, rm, rv) < 0 || !(y = new_f32(4, PyArray_DIMS(x)))) {
        goto cleanup;
    }
    const npy_intp *xd = PyArray_DIMS(x);
    RUN_KERNEL_RETURN(result, fn,
                      batchnorm2d_forward_eval(f32(y), f32(x), f32(rm), f32(rv), f32(w), f32(b),
                                               xd[0], xd[1], xd[2] * xd[3], (float)eps),
                      Py_NewRef(y));
cleanup:
    RELEASE(x, w, b, rm, rv, y);
    return result;
}

static PyObject *py_batch_norm2d_backward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "batch_norm2d_backward";
    static char *kwlist[] = {"grad_out", "x", "weight", "mean", "invstd", "grad_weight",
                             "grad_bias", "training", "need_input_grad", NULL};
    static const char *const names[5] = {"weight", "mean", "invstd", "grad_weight", "grad_bias"};
    PyObject *dy_obj, *x_obj, *w_obj, *m_obj, *is_obj, *dw_obj = Py_None, *db_obj = Py_None;
    PyObject *result = NULL;
    int training = 1, need_input_grad = 1;
    PyArrayObject *dy = NULL, *x = NULL, *w = NULL, *m = NULL, *is = NULL, *dw = NULL, *db = NULL;
    PyArrayObject *dx = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO|OOpp:batch_norm2d_backward", kwlist,
                                     &dy_obj, &x_obj, &w_obj, &m_obj, &is_obj, &dw_obj, &db_obj,
                                     &training, &need_input_grad) ||
        !(dy = input_f32(dy_obj, fn, "grad_out", 4, "(N, C, H, W)")) ||
        !(x = input_f32(x_obj, fn, "x", 4, "(N, C, H, W)")) ||
        !(m = input_f32(m_obj, fn, "mean", 1, "(C,)")) ||
        !(is = input_f32(is_obj, fn, "invstd", 1, "(C,)")) ||
        optional_f32(&w, w_obj, fn, "weight", 1, "(C,)") < 0 ||
        optional_inplace_f32(&dw, dw_obj, fn, "grad_weight") < 0 ||
        optional_inplace_f32(&db, db_obj, fn, "grad_bias") < 0 ||
        expect_nonempty_chw(PyArray_DIMS(x), fn, "x") < 0 ||
        expect_shape(dy, fn, "grad_out", 4, PyArray_DIMS(x)) < 0) {
        goto cleanup;
    }
    const npy_intp *xd = PyArray_DIMS(x);
    PyArrayObject *const per_channel[5] = {w, m, is, dw, db};
    if (expect_channels(fn, xd[1], per_channel, names, 5) < 0 ||
        (need_input_grad && !(dx = new_f32(4, xd)))) {
        goto cleanup;
    }
    RUN_KERNEL_RETURN(result, fn,
                      batchnorm2d_backward(f32(dx), f32(dw), f32(db), f32(dy), f32(x), f32(w),
                                           f32(m), f32(is), xd[0], xd[1], xd[2] * xd[3], training),
                      Py_NewRef(dx ? (PyObject *)dx : Py_None));
cleanup:
    RELEASE(dy, x, w, m, is, dw, db, dx);
    return result;
}

PyMethodDef wt_norm_methods[] = {
    KW(batch_norm2d_forward_train, "batch_norm2d_forward_train(x, weight=None, bias=None, "
                                   "running_mean=None, running_var=None, momentum=0.1, "
                                   "eps=1e-5) -> (y, save_mean, save_invstd); updates the "
                                   "running statistics in place."),
    KW(batch_norm2d_forward_eval, "batch_norm2d_forward_eval(x, weight, bias, running_mean, "
                                  "running_var, eps=1e-5) -> y."),
    KW(batch_norm2d_backward, "batch_norm2d_backward(grad_out, x, weight, mean, invstd, "
                              "grad_weight=None, grad_bias=None, training=True, "
                              "need_input_grad=True) -> grad_in or None; adds into grad_weight "
                              "and grad_bias."),
    {NULL, NULL, 0, NULL},
};
