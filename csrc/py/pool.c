/* The pooling entry points: max, average and global average pooling, forward and
 * backward, over pool2d.c. */
#include "args.h"
#include "methods.h"

#include "pool2d.h"

/* Fills a pool2d_shape; stride None means stride = kernel size, as in PyTorch. */
static int pool_shape(pool2d_shape *s, const char *fn, const npy_intp *xd, PyObject *kernel,
                      PyObject *stride, PyObject *padding, PyObject *dilation, int ceil_mode) {
    int64_t k[2], st[2], pad[2], dl[2] = {1, 1};
    if (parse_ints(kernel, fn, "kernel_size", k, 2, 1) < 0) {
        return -1;
    }
    if (stride == NULL || stride == Py_None) {
        st[0] = k[0];
        st[1] = k[1];
    } else if (parse_ints(stride, fn, "stride", st, 2, 1) < 0) {
        return -1;
    }
    if ((padding && parse_ints(padding, fn, "padding", pad, 2, 0) < 0) ||
        (dilation && parse_ints(dilation, fn, "dilation", dl, 2, 1) < 0)) {
        return -1;
    }
    if (!padding) {
        pad[0] = pad[1] = 0;
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
                        .dilation_h = dl[0], .dilation_w = dl[1], .ceil_mode = ceil_mode};
    if (pool2d_shape_init(s) != WT_OK) {
        PyErr_Format(PyExc_ValueError,
                     "%s: the padded input (%lld x %lld) is smaller than the kernel window: the "
                     "output would be empty",
                     fn, (long long)(s->h + 2 * pad[0]), (long long)(s->w + 2 * pad[1]));
        return -1;
    }
    return 0;
}

static PyObject *py_max_pool2d_forward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "max_pool2d_forward";
    static char *kwlist[] = {"x", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                             NULL};
    PyObject *x_obj, *kernel, *stride = Py_None, *padding = NULL, *dilation = NULL;
    PyObject *result = NULL;
    int ceil_mode = 0;
    PyArrayObject *x = NULL, *y = NULL, *idx = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOOp:max_pool2d_forward", kwlist, &x_obj,
                                     &kernel, &stride, &padding, &dilation, &ceil_mode) ||
        !(x = input_f32(x_obj, fn, "x", 4, "(N, C, H, W)"))) {
        goto cleanup;
    }
    pool2d_shape s;
    if (pool_shape(&s, fn, PyArray_DIMS(x), kernel, stride, padding, dilation, ceil_mode) < 0) {
        goto cleanup;
    }
    npy_intp yd[4] = {s.n, s.c, s.oh, s.ow};
    if (check_size(yd, 4, fn, "the output") < 0 ||
        !(y = (PyArrayObject *)PyArray_SimpleNew(4, yd, NPY_FLOAT32)) ||
        !(idx = (PyArrayObject *)PyArray_SimpleNew(4, yd, NPY_INT64))) {
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, maxpool2d_forward(f32(y), (int64_t *)PyArray_DATA(idx), f32(x), &s));
    if (check_status(status, fn) == 0) {
        result = PyTuple_Pack(2, y, idx);
    }
cleanup:
    Py_XDECREF(x);
    Py_XDECREF(y);
    Py_XDECREF(idx);
    return result;
}

static PyObject *py_max_pool2d_backward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "max_pool2d_backward";
    static char *kwlist[] = {"grad_out", "indices", "input_shape", NULL};
    PyObject *dy_obj, *idx_obj, *shape_obj;
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
    if (check_size(xd, 4, fn, "grad_in") < 0 ||
        !(dx = (PyArrayObject *)PyArray_ZEROS(4, xd, NPY_FLOAT32, 0))) {
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
        Py_CLEAR(dx);
    } else if (check_status(status, fn) < 0) {
        Py_CLEAR(dx);
    }
cleanup:
    Py_XDECREF(dy);
    Py_XDECREF(idx);
    return (PyObject *)dx;
}

static PyObject *py_avg_pool2d_forward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "avg_pool2d_forward";
    static char *kwlist[] = {"x", "kernel_size", "stride", "padding", "ceil_mode",
                             "count_include_pad", NULL};
    PyObject *x_obj, *kernel, *stride = Py_None, *padding = NULL;
    int ceil_mode = 0, count_include_pad = 1;
    PyArrayObject *x = NULL, *y = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOpp:avg_pool2d_forward", kwlist, &x_obj,
                                     &kernel, &stride, &padding, &ceil_mode, &count_include_pad) ||
        !(x = input_f32(x_obj, fn, "x", 4, "(N, C, H, W)"))) {
        goto cleanup;
    }
    pool2d_shape s;
    if (pool_shape(&s, fn, PyArray_DIMS(x), kernel, stride, padding, NULL, ceil_mode) < 0) {
        goto cleanup;
    }
    npy_intp yd[4] = {s.n, s.c, s.oh, s.ow};
    if (check_size(yd, 4, fn, "the output") < 0 ||
        !(y = (PyArrayObject *)PyArray_SimpleNew(4, yd, NPY_FLOAT32))) {
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, avgpool2d_forward(f32(y), f32(x), &s, count_include_pad));
    if (check_status(status, fn) < 0) {
        Py_CLEAR(y);
    }
cleanup:
    Py_XDECREF(x);
    return (PyObject *)y;
}

static PyObject *py_avg_pool2d_backward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "avg_pool2d_backward";
    static char *kwlist[] = {"grad_out", "input_shape", "kernel_size", "stride", "padding",
                             "ceil_mode", "count_include_pad", NULL};
    PyObject *dy_obj, *shape_obj, *kernel, *stride = Py_None, *padding = NULL;
    int ceil_mode = 0, count_include_pad = 1;
    PyArrayObject *dy = NULL, *dx = NULL;
    npy_intp xd[4];
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|OOpp:avg_pool2d_backward", kwlist, &dy_obj,
                                     &shape_obj, &kernel, &stride, &padding, &ceil_mode,
                                     &count_include_pad) ||
        !(dy = input_f32(dy_obj, fn, "grad_out", 4, "(N, C, OH, OW)")) ||
        parse_shape4(shape_obj, fn, "input_shape", xd) < 0) {
        goto cleanup;
    }
    pool2d_shape s;
    if (pool_shape(&s, fn, xd, kernel, stride, padding, NULL, ceil_mode) < 0) {
        goto cleanup;
    }
    npy_intp yd[4] = {s.n, s.c, s.oh, s.ow};
    if (expect_shape(dy, fn, "grad_out", 4, yd) < 0 || check_size(xd, 4, fn, "grad_in") < 0 ||
        !(dx = (PyArrayObject *)PyArray_ZEROS(4, xd, NPY_FLOAT32, 0))) {
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, avgpool2d_backward(f32(dx), f32(dy), &s, count_include_pad));
    if (check_status(status, fn) < 0) {
        Py_CLEAR(dx);
    }
cleanup:
    Py_XDECREF(dy);
    return (PyObject *)dx;
}

static PyObject *py_global_avg_pool2d_forward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "global_avg_pool2d_forward";
    static char *kwlist[] = {"x", NULL};
    PyObject *x_obj;
    PyArrayObject *x = NULL, *y = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O:global_avg_pool2d_forward", kwlist, &x_obj) ||
        !(x = input_f32(x_obj, fn, "x", 4, "(N, C, H, W)"))) {
        goto cleanup;
    }
    const npy_intp *xd = PyArray_DIMS(x);
    if (expect_nonempty_chw(xd, fn, "x") < 0) {
        goto cleanup;
    }
    npy_intp yd[4] = {xd[0], xd[1], 1, 1};
    if (!(y = (PyArrayObject *)PyArray_SimpleNew(4, yd, NPY_FLOAT32))) {
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, global_avgpool_forward(f32(y), f32(x), xd[0] * xd[1], xd[2] * xd[3]));
    if (check_status(status, fn) < 0) {
        Py_CLEAR(y);
    }
cleanup:
    Py_XDECREF(x);
    return (PyObject *)y;
}

static PyObject *py_global_avg_pool2d_backward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "global_avg_pool2d_backward";
    static char *kwlist[] = {"grad_out", "input_shape", NULL};
    PyObject *dy_obj, *shape_obj;
    PyArrayObject *dy = NULL, *dx = NULL;
    npy_intp xd[4];
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO:global_avg_pool2d_backward", kwlist, &dy_obj,
                                     &shape_obj) ||
        !(dy = input_f32(dy_obj, fn, "grad_out", 4, "(N, C, 1, 1)")) ||
        parse_shape4(shape_obj, fn, "input_shape", xd) < 0) {
        goto cleanup;
    }
    npy_intp yd[4] = {xd[0], xd[1], 1, 1};
    if (expect_nonempty_chw(xd, fn, "input_shape") < 0) {
        goto cleanup;
    }
    if (expect_shape(dy, fn, "grad_out", 4, yd) < 0 || check_size(xd, 4, fn, "grad_in") < 0 ||
        !(dx = (PyArrayObject *)PyArray_ZEROS(4, xd, NPY_FLOAT32, 0))) {
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, global_avgpool_backward(f32(dx), f32(dy), xd[0] * xd[1], xd[2] * xd[3]));
    if (check_status(status, fn) < 0) {
        Py_CLEAR(dx);
    }
cleanup:
    Py_XDECREF(dy);
    return (PyObject *)dx;
}

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
