/* The pooling entry points: max, average and global average pooling, forward and
 * backward, over pool2d.c. */
#include "args.h"
#include "methods.h"

#include "pool2d.h"

/* The hyperparameters of a pooling call as passed, NULL where absent. An absent or None
 * stride means the kernel size, as in PyTorch; absent padding is 0 and dilation 1. */
typedef struct {
    PyObject *kernel, *stride, *padding, *dilation;
    int ceil_mode, count_include_pad;
} pool_hyper;

/* Fills a pool2d_shape from x's dims and h. */
static int pool_shape(pool2d_shape *s, const char *fn, const npy_intp *xd, const pool_hyper *h) {
    int64_t k[2], st[2], pad[2] = {0, 0}, dl[2] = {1, 1};
    if (parse_ints(h->kernel, fn, "kernel_size", k, 2, 1) < 0) {
        return -1;
    }
    if (h->stride == NULL || h->stride == Py_None) {
        st[0] = k[0];
        st[1] = k[1];
    } else if (parse_ints(h->stride, fn, "stride", st, 2, 1) < 0) {
        return -1;
    }
    if ((h->padding && parse_ints(h->padding, fn, "padding", pad, 2, 0) < 0) ||
        (h->dilation && parse_ints(h->dilation, fn, "dilation", dl, 2, 1) < 0)) {
        return -1;
    }
    if (2 * pad[0] > k[0] || 2 * pad[1] > k[1]) {
        PyErr_Format(PyExc_ValueError,
                     "%s: padding should be at most half the kernel size, got padding (%lld, "
                     "%lld) for kernel (%lld, %lld)",
                     fn, (long long)pad[0], (long long)pad[1], (long long)k[0], (long long)k[1]);
        return -1;
    }
    if (expect_nonempty_chw(xd, fn, "x") < 0) {
        return -1;
    }
    *s = (pool2d_shape){.n = xd[0], .c = xd[1], .h = xd[2], .w = xd[3], .kh = k[0], .kw = k[1],
                        .stride_h = st[0], .stride_w = st[1], .pad_h = pad[0], .pad_w = pad[1],
                        .dilation_h = dl[0], .dilation_w = dl[1], .ceil_mode = h->ceil_mode};
    if (pool2d_shape_init(s) != WT_OK) {
        PyErr_Format(PyExc_ValueError,
                     "%s: the padded input (%lld x %lld) is smaller than the kernel window: the "
                     "output would be empty",
                     fn, (long long)(s->h + 2 * pad[0]), (long long)(s->w + 2 * pad[1]));
        return -1;
    }
    return 0;
}

/* The shape of a global average pooling over x's dims xd: the window is the whole plane,
 * the output (N, C, 1, 1). 0, or -1 when C, H or W is 0 (name: what xd came from). */
static int global_shape(pool2d_shape *s, const char *fn, const npy_intp *xd, const char *name) {
    if (expect_nonempty_chw(xd, fn, name) < 0) {
        return -1;
    }
    *s = (pool2d_shape){.n = xd[0], .c = xd[1], .h = xd[2], .w = xd[3], .oh = 1, .ow = 1};
    return 0;
}

/* What the forward entry points share: x converted, s filled from it and h (NULL for a
 * global pooling), and the output y (N, C, OH, OW) allocated. 0, or -1 with an exception
 * set. */
static int pool_forward_setup(PyArrayObject **x, PyArrayObject **y, pool2d_shape *s,
                              PyObject *x_obj, const char *fn, const pool_hyper *h) {
    if (!(*x = input_f32(x_obj, fn, "x", 4, "(N, C, H, W)")) ||
        (h ? pool_shape(s, fn, PyArray_DIMS(*x), h)
           : global_shape(s, fn, PyArray_DIMS(*x), "x")) < 0) {
        return -1;
    }
    npy_intp yd[4] = {s->n, s->c, s->oh, s->ow};
    return check_size(yd, 4, fn, "the output") < 0 || !(*y = new_f32(4, yd)) ? -1 : 0;
}

static PyObject *py_max_pool2d_forward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "max_pool2d_forward";
    static char *kwlist[] = {"x", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                             NULL};
    PyObject *x_obj, *result = NULL;
    pool_hyper h = {NULL};
    pool2d_shape s;
    PyArrayObject *x = NULL, *y = NULL, *idx = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOOp:max_pool2d_forward", kwlist, &x_obj,
                                     &h.kernel, &h.stride, &h.padding, &h.dilation,
                                     &h.ceil_mode) ||
        pool_forward_setup(&x, &y, &s, x_obj, fn, &h) < 0 ||
        !(idx = (PyArrayObject *)PyArray_SimpleNew(4, PyArray_DIMS(y), NPY_INT64))) {
        goto cleanup;
    }
    RUN_KERNEL_RETURN(result, fn,
                      maxpool2d_forward(f32(y), (int64_t *)PyArray_DATA(idx), f32(x), &s),
                      PyTuple_Pack(2, y, idx));
cleanup:
    RELEASE(x, y, idx);
    return result;
}

static PyObject *py_max_pool2d_backward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "max_pool2d_backward";
    static char *kwlist[] = {"grad_out", "indices", "input_shape", NULL};
    PyObject *dy_obj, *idx_obj, *shape_obj, *result = NULL;
    PyArrayObject *dy = NULL, *idx = NULL, *dx = NULL;
    npy_intp xd[4];
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO:max_pool2d_backward", kwlist, &dy_obj,
                                     &idx_obj, &shape_obj) ||
        !(dy = input_f32(dy_obj, fn, "grad_out", 4, "(N, C, OH, OW)")) ||
        !(idx = input_i64(idx_obj, fn, "indices", 4)) ||
        parse_shape4(shape_obj, fn, "input_shape", xd) < 0 ||
        expect_nonempty_chw(xd, fn, "input_shape") < 0 ||
        expect_shape(idx, fn, "indices", 4, PyArray_DIMS(dy)) < 0) {
        goto cleanup;
    }
    if (PyArray_DIM(dy, 0) != xd[0] || PyArray_DIM(dy, 1) != xd[1]) {
        PyErr_Format(PyExc_ValueError,
                     "%s: grad_out: expected N=%lld and C=%lld as in input_shape, got %lld and "
                     "%lld",
                     fn, (long long)xd[0], (long long)xd[1], (long long)PyArray_DIM(dy, 0),
                     (long long)PyArray_DIM(dy, 1));
        goto cleanup;
    }
    if (check_size(xd, 4, fn, "grad_in") < 0 || !(dx = zeros_f32(4, xd))) {
        goto cleanup;
    }
    pool2d_shape s = {.n = xd[0], .c = xd[1], .h = xd[2], .w = xd[3],
                      .oh = PyArray_DIM(dy, 2), .ow = PyArray_DIM(dy, 3)};
    wt_status status;
    RUN_KERNEL(status, maxpool2d_backward(f32(dx), f32(dy), (int64_t *)PyArray_DATA(idx), &s));
    if (status == WT_ERR_VALUE) {
        PyErr_Format(PyExc_ValueError,
                     "%s: indices: expected flat positions in [0, H*W) = [0, %lld), found one "
                     "outside",
                     fn, (long long)(xd[2] * xd[3]));
    } else if (check_status(status, fn) == 0) {
        result = Py_NewRef(dx);
    }
cleanup:
    RELEASE(dy, idx, dx);
    return result;
}

/* avg_pool2d_forward, or global_avg_pool2d_forward (global: no hyperparameters). */
static PyObject *avg_pool_forward_py(PyObject *args, PyObject *kw, int global) {
    static char *kwlist[] = {"x", "kernel_size", "stride", "padding", "ceil_mode",
                             "count_include_pad", NULL};
    static char *global_kwlist[] = {"x", NULL};
    const char *fn = global ? "global_avg_pool2d_forward" : "avg_pool2d_forward";
    PyObject *x_obj, *result = NULL;
    pool_hyper h = {.count_include_pad = 1};
    pool2d_shape s;
    PyArrayObject *x = NULL, *y = NULL;
    if (!PyArg_ParseTupleAndKeywords(
            args, kw, global ? "O:global_avg_pool2d_forward" : "OO|OOpp:avg_pool2d_forward",
            global ? global_kwlist : kwlist, &x_obj, &h.kernel, &h.stride, &h.padding,
            &h.ceil_mode, &h.count_include_pad) ||
        pool_forward_setup(&x, &y, &s, x_obj, fn, global ? NULL : &h) < 0) {
        goto cleanup;
    }
    RUN_KERNEL_RETURN(result, fn,
                      global ? global_avgpool_forward(f32(y), f32(x), s.n * s.c, s.h * s.w)
                             : avgpool2d_forward(f32(y), f32(x), &s, h.count_include_pad),
                      Py_NewRef(y));
cleanup:
    RELEASE(x, y);
    return result;
}

/* avg_pool2d_backward, or global_avg_pool2d_backward (global: no hyperparameters). */
static PyObject *avg_pool_backward_py(PyObject *args, PyObject *kw, int global) {
    static char *kwlist[] = {"grad_out", "input_shape", "kernel_size", "stride", "padding",
                             "ceil_mode", "count_include_pad", NULL};
    static char *global_kwlist[] = {"grad_out", "input_shape", NULL};
    const char *fn = global ? "global_avg_pool2d_backward" : "avg_pool2d_backward";
    PyObject *dy_obj, *shape_obj, *result = NULL;
    pool_hyper h = {.count_include_pad = 1};
    pool2d_shape s;
    PyArrayObject *dy = NULL, *dx = NULL;
    npy_intp xd[4];
    if (!PyArg_ParseTupleAndKeywords(
            args, kw, global ? "OO:global_avg_pool2d_backward" : "OOO|OOpp:avg_pool2d_backward",
            global ? global_kwlist : kwlist, &dy_obj, &shape_obj, &h.kernel, &h.stride,
            &h.padding, &h.ceil_mode, &h.count_include_pad) ||
        !(dy = input_f32(dy_obj, fn, "grad_out", 4, global ? "(N, C, 1, 1)" : "(N, C, OH, OW)")) ||
        parse_shape4(shape_obj, fn, "input_shape", xd) < 0 ||
        (global ? global_shape(&s, fn, xd, "input_shape") : pool_shape(&s, fn, xd, &h)) < 0) {
        goto cleanup;
    }
    npy_intp yd[4] = {s.n, s.c, s.oh, s.ow};
    if (expect_shape(dy, fn, "grad_out", 4, yd) < 0 || check_size(xd, 4, fn, "grad_in") < 0 ||
        !(dx = zeros_f32(4, xd))) {
        goto cleanup;
    }
    RUN_KERNEL_RETURN(result, fn,
                      global ? global_avgpool_backward(f32(dx), f32(dy), s.n * s.c, s.h * s.w)
                             : avgpool2d_backward(f32(dx), f32(dy), &s, h.count_include_pad),
                      Py_NewRef(dx));
cleanup:
    RELEASE(dy, dx);
    return result;
}

ENTRY_OF(avg_pool2d_forward, avg_pool_forward_py, 0)
ENTRY_OF(avg_pool2d_backward, avg_pool_backward_py, 0)
ENTRY_OF(global_avg_pool2d_forward, avg_pool_forward_py, 1)
ENTRY_OF(global_avg_pool2d_backward, avg_pool_backward_py, 1)

PyMethodDef wt_pool_methods[] = {
    KW(max_pool2d_forward, "max_pool2d_forward(x, kernel_size, stride=None, padding=0, "
                           "dilation=1, ceil_mode=False) -> (y, indices int64)."),
    KW(max_pool2d_backward, "max_pool2d_backward(grad_out, indices, input_shape) -> grad_in."),
    KW(avg_pool2d_forward, "avg_pool2d_forward(x, kernel_size, stride=None, padding=0, "
                           "ceil_mode=False, count_include_pad=True) -> y."),
    KW(avg_pool2d_backward, "avg_pool2d_backward(grad_out, input_shape, kernel_size, "
                            "stride=None, padding=0, ceil_mode=False, count_include_pad=True) "
                            "-> grad_in."),
    KW(global_avg_pool2d_forward, "global_avg_pool2d_forward(x) -> y (N, C, 1, 1)."),
    KW(global_avg_pool2d_backward, "global_avg_pool2d_backward(grad_out (N, C, 1, 1), "
                                   "input_shape) -> grad_in."),
    {NULL, NULL, 0, NULL},
};
