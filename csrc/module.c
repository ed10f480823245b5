/* weitiao._C's entry points. Each wrapper parses its arguments, checks dtype, rank, every
 * shape and contiguity with the helpers of py/args.h, allocates outputs, releases the GIL
 * around the kernel and turns its status into an exception. The algorithms live in the
 * plain C files. */
#define WT_IMPORT_ARRAY
#include "py/args.h"

#include <math.h>

#include "activation.h"
#include "batchnorm.h"
#include "block_cache.h"
#include "conv2d.h"
#include "dropout.h"
#include "linear.h"
#include "loss.h"
#include "optim.h"
#include "pool2d.h"
#include "threads.h"

/* ---------------------------------------------------------------- convolution */

/* Whether 3x3 stride-1 convolutions may take the Winograd path; set_winograd changes it
 * under the GIL, and each call reads it once into its conv2d_shape, so a workspace sized
 * for one path is never used by the other. */
static int winograd_enabled = 1;

/* Padding as an int, (pad_h, pad_w), or (top, bottom, left, right). */
static int parse_padding(PyObject *obj, const char *fn, int64_t pad[4]) {
    if (PySequence_Check(obj) && !PyUnicode_Check(obj) && PySequence_Size(obj) == 4) {
        return parse_ints(obj, fn, "padding", pad, 4, 0);
    }
    PyErr_Clear(); /* len() fails for a 0-d array, which can still be an integer */
    int64_t hw[2];
    if (is_integer(obj) || (PySequence_Check(obj) && PySequence_Size(obj) == 2)) {
        if (parse_ints(obj, fn, "padding", hw, 2, 0) < 0) {
            return -1;
        }
        pad[0] = pad[1] = hw[0];
        pad[2] = pad[3] = hw[1];
        return 0;
    }
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError,
                 "%s: padding: expected an int, (pad_h, pad_w) or (top, bottom, left, right), "
                 "got %R",
                 fn, obj);
    return -1;
}

/* Fills a conv2d_shape from x's and weight's dims and the hyperparameters, with messages
 * that name what does not fit. */
static int conv_shape(conv2d_shape *s, const char *fn, const char *wname, const npy_intp *xd,
                      const npy_intp *wd, PyObject *stride, PyObject *padding,
                      PyObject *dilation, PyObject *groups_obj) {
    int64_t st[2], dl[2], pad[4], g;
    if (parse_ints(stride, fn, "stride", st, 2, 1) < 0 ||
        parse_ints(dilation, fn, "dilation", dl, 2, 1) < 0 || parse_padding(padding, fn, pad) < 0 ||
        parse_ints(groups_obj, fn, "groups", &g, 1, 1) < 0) {
        return -1;
    }
    const long groups = (long)g;
    if (xd[1] % groups != 0 || wd[0] % groups != 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: groups=%ld must divide the input channels (%lld) and the output "
                     "channels (%lld)",
                     fn, groups, (long long)xd[1], (long long)wd[0]);
        return -1;
    }
    if (wd[1] != xd[1] / groups || wd[0] == 0 || wd[2] == 0 || wd[3] == 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: %s: expected shape (OC, %lld, KH, KW) with OC, KH, KW >= 1 for %lld "
                     "input channels and groups=%ld, got (%lld, %lld, %lld, %lld)",
                     fn, wname, (long long)(xd[1] / groups), (long long)xd[1], groups, (long long)wd[0],
                     (long long)wd[1], (long long)wd[2], (long long)wd[3]);
        return -1;
    }
    if (expect_nonempty_chw(xd, fn, "x") < 0) {
        return -1;
    }
    /* H and W reach 2^40 through input_shape, and more in an empty batch: the padded plane's
     * area bounds OH*OW, so keeping it in int64 keeps conv2d_shape_init's product there too. */
    const int64_t in_h = xd[2] + pad[0] + pad[1], in_w = xd[3] + pad[2] + pad[3];
    if (in_h > INT64_MAX / in_w) {
        PyErr_Format(PyExc_ValueError, "%s: the padded input (%lld x %lld) is too large", fn,
                     (long long)in_h, (long long)in_w);
        return -1;
    }
    *s = (conv2d_shape){.n = xd[0], .c = xd[1], .h = xd[2], .w = xd[3], .oc = wd[0],
                        .kh = wd[2], .kw = wd[3], .stride_h = st[0], .stride_w = st[1],
                        .pad_top = pad[0], .pad_bottom = pad[1], .pad_left = pad[2],
                        .pad_right = pad[3], .dilation_h = dl[0], .dilation_w = dl[1],
                        .groups = groups, .no_winograd = !winograd_enabled};
    wt_status status = conv2d_shape_init(s);
    if (status == WT_ERR_SHAPE) {
        PyErr_Format(PyExc_ValueError,
                     "%s: the padded input (%lld x %lld) is smaller than the dilated kernel "
                     "(%lld x %lld): the output would be empty",
                     fn, (long long)(s->h + pad[0] + pad[1]), (long long)(s->w + pad[2] + pad[3]),
                     (long long)(dl[0] * (s->kh - 1) + 1), (long long)(dl[1] * (s->kw - 1) + 1));
        return -1;
    }
    if (check_status(status, fn) < 0) {
        return -1;
    }
    npy_intp yd[4] = {s->n, s->oc, s->oh, s->ow};
    return check_size(yd, 4, fn, "the output");
}

#define CONV_KWARGS "stride", "padding", "dilation", "groups"

static PyObject *py_conv2d_forward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "conv2d_forward";
    static char *kwlist[] = {"x", "weight", "bias", CONV_KWARGS, NULL};
    PyObject *x_obj, *w_obj, *b_obj = Py_None, *stride = NULL, *padding = NULL, *dilation = NULL;
    PyObject *groups = NULL;
    PyArrayObject *x = NULL, *w = NULL, *b = NULL, *y = NULL;
    float *ws = NULL;
    int failed = 0;
    PyObject *one = PyLong_FromLong(1), *zero = PyLong_FromLong(0);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOOOO:conv2d_forward", kwlist, &x_obj, &w_obj,
                                     &b_obj, &stride, &padding, &dilation, &groups)) {
        goto cleanup;
    }
    if (!(x = input_f32(x_obj, fn, "x", 4, "(N, C, H, W)")) ||
        !(w = input_f32(w_obj, fn, "weight", 4, "(OC, C/groups, KH, KW)"))) {
        goto cleanup;
    }
    b = optional_f32(b_obj, fn, "bias", 1, "(OC,)", &failed);
    if (failed) {
        goto cleanup;
    }
    conv2d_shape s;
    const int nthreads = wt_get_num_threads();
    if (conv_shape(&s, fn, "weight", PyArray_DIMS(x), PyArray_DIMS(w), stride ? stride : one,
                   padding ? padding : zero, dilation ? dilation : one,
                   groups ? groups : one) < 0) {
        goto cleanup;
    }
    npy_intp bd[1] = {s.oc};
    if (b && expect_shape(b, fn, "bias", 1, bd) < 0) {
        goto cleanup;
    }
    npy_intp yd[4] = {s.n, s.oc, s.oh, s.ow};
    if (!(y = (PyArrayObject *)PyArray_SimpleNew(4, yd, NPY_FLOAT32)) ||
        !(ws = alloc_workspace(conv2d_workspace_size(&s, nthreads)))) {
        Py_CLEAR(y);
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, conv2d_forward(f32(y), ws, f32(x), f32(w), f32(b), &s, nthreads));
    if (check_status(status, fn) < 0) {
        Py_CLEAR(y);
    }
cleanup:
    PyMem_RawFree(ws);
    Py_XDECREF(one);
    Py_XDECREF(zero);
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(b);
    return (PyObject *)y;
}

static PyObject *py_conv2d_backward_data(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "conv2d_backward_data";
    static char *kwlist[] = {"grad_out", "weight", "input_shape", CONV_KWARGS, NULL};
    PyObject *dy_obj, *w_obj, *shape_obj, *stride = NULL, *padding = NULL, *dilation = NULL;
    PyObject *groups = NULL;
    PyArrayObject *dy = NULL, *w = NULL, *dx = NULL;
    float *ws = NULL;
    PyObject *one = PyLong_FromLong(1), *zero = PyLong_FromLong(0);
    npy_intp xd[4];
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|OOOO:conv2d_backward_data", kwlist, &dy_obj,
                                     &w_obj, &shape_obj, &stride, &padding, &dilation, &groups)) {
        goto cleanup;
    }
    if (!(dy = input_f32(dy_obj, fn, "grad_out", 4, "(N, OC, OH, OW)")) ||
        !(w = input_f32(w_obj, fn, "weight", 4, "(OC, C/groups, KH, KW)")) ||
        parse_shape4(shape_obj, fn, "input_shape", xd) < 0) {
        goto cleanup;
    }
    conv2d_shape s;
    const int nthreads = wt_get_num_threads();
    if (conv_shape(&s, fn, "weight", xd, PyArray_DIMS(w), stride ? stride : one,
                   padding ? padding : zero, dilation ? dilation : one,
                   groups ? groups : one) < 0) {
        goto cleanup;
    }
    npy_intp yd[4] = {s.n, s.oc, s.oh, s.ow};
    if (expect_shape(dy, fn, "grad_out", 4, yd) < 0 || check_size(xd, 4, fn, "grad_in") < 0) {
        goto cleanup;
    }
    if (!(dx = (PyArrayObject *)PyArray_EMPTY(4, xd, NPY_FLOAT32, 0)) ||
        !(ws = alloc_workspace(conv2d_workspace_size(&s, nthreads)))) {
        Py_CLEAR(dx);
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, conv2d_backward_data(f32(dx), ws, f32(dy), f32(w), &s, nthreads));
    if (check_status(status, fn) < 0) {
        Py_CLEAR(dx);
    }
cleanup:
    PyMem_RawFree(ws);
    Py_XDECREF(one);
    Py_XDECREF(zero);
    Py_XDECREF(dy);
    Py_XDECREF(w);
    return (PyObject *)dx;
}

static PyObject *py_conv2d_backward_weight(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "conv2d_backward_weight";
    static char *kwlist[] = {"grad_out", "x", "grad_weight", "grad_bias", CONV_KWARGS, NULL};
    PyObject *dy_obj, *x_obj, *dw_obj, *db_obj = Py_None;
    PyObject *stride = NULL, *padding = NULL, *dilation = NULL, *result = NULL;
    PyObject *groups = NULL;
    PyArrayObject *dy = NULL, *x = NULL, *dw = NULL, *db = NULL;
    float *ws = NULL;
    int failed = 0;
    PyObject *one = PyLong_FromLong(1), *zero = PyLong_FromLong(0);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|OOOOO:conv2d_backward_weight", kwlist,
                                     &dy_obj, &x_obj, &dw_obj, &db_obj, &stride, &padding,
                                     &dilation, &groups)) {
        goto cleanup;
    }
    if (!(dy = input_f32(dy_obj, fn, "grad_out", 4, "(N, OC, OH, OW)")) ||
        !(x = input_f32(x_obj, fn, "x", 4, "(N, C, H, W)")) ||
        !(dw = inplace_f32(dw_obj, fn, "grad_weight"))) {
        goto cleanup;
    }
    db = optional_inplace_f32(db_obj, fn, "grad_bias", &failed);
    if (failed) {
        goto cleanup;
    }
    if (PyArray_NDIM(dw) != 4) {
        char shape[160];
        format_shape(shape, sizeof(shape), dw);
        PyErr_Format(PyExc_ValueError,
                     "%s: grad_weight: expected a 4-D array (OC, C/groups, KH, KW), got shape %s",
                     fn, shape);
        goto cleanup;
    }
    conv2d_shape s;
    const int nthreads = wt_get_num_threads();
    if (conv_shape(&s, fn, "grad_weight", PyArray_DIMS(x), PyArray_DIMS(dw),
                   stride ? stride : one, padding ? padding : zero, dilation ? dilation : one,
                   groups ? groups : one) < 0) {
        goto cleanup;
    }
    npy_intp yd[4] = {s.n, s.oc, s.oh, s.ow}, bd[1] = {s.oc};
    if (expect_shape(dy, fn, "grad_out", 4, yd) < 0 ||
        (db && expect_shape(db, fn, "grad_bias", 1, bd) < 0)) {
        goto cleanup;
    }
    if (!(ws = alloc_workspace(conv2d_workspace_size(&s, nthreads)))) {
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, conv2d_backward_weight(f32(dw), f32(db), ws, f32(dy), f32(x), &s, nthreads));
    if (check_status(status, fn) == 0) {
        result = Py_NewRef(Py_None);
    }
cleanup:
    PyMem_RawFree(ws);
    Py_XDECREF(one);
    Py_XDECREF(zero);
    Py_XDECREF(dy);
    Py_XDECREF(x);
    Py_XDECREF(dw);
    Py_XDECREF(db);
    return result;
}

/* ---------------------------------------------------------------- pooling */

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

/* ---------------------------------------------------------------- batch norm */

/* Checks that each non-NULL per-channel array has shape (c,). */
static int expect_channels(const char *fn, npy_intp c, PyArrayObject **arrays,
                           const char **names, int count) {
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

static int check_momentum(const char *fn, double momentum) {
    if (!(momentum >= 0.0 && momentum <= 1.0)) {
        value_error("%s: momentum: expected a number in [0, 1], got %g", fn, momentum);
        return -1;
    }
    return 0;
}

static PyObject *py_batch_norm2d_forward_train(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "batch_norm2d_forward_train";
    static char *kwlist[] = {"x", "weight", "bias", "running_mean", "running_var", "momentum",
                             "eps", NULL};
    PyObject *x_obj, *w_obj = Py_None, *b_obj = Py_None, *rm_obj = Py_None, *rv_obj = Py_None;
    PyObject *result = NULL;
    double momentum = 0.1, eps = 1e-5;
    int failed = 0;
    PyArrayObject *x = NULL, *w = NULL, *b = NULL, *rm = NULL, *rv = NULL;
    PyArrayObject *y = NULL, *mean = NULL, *invstd = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOOOdd:batch_norm2d_forward_train", kwlist,
                                     &x_obj, &w_obj, &b_obj, &rm_obj, &rv_obj, &momentum, &eps) ||
        check_eps(fn, eps) < 0 || check_momentum(fn, momentum) < 0 ||
        !(x = input_f32(x_obj, fn, "x", 4, "(N, C, H, W)"))) {
        goto cleanup;
    }
    w = optional_f32(w_obj, fn, "weight", 1, "(C,)", &failed);
    b = failed ? NULL : optional_f32(b_obj, fn, "bias", 1, "(C,)", &failed);
    rm = failed ? NULL : optional_inplace_f32(rm_obj, fn, "running_mean", &failed);
    rv = failed ? NULL : optional_inplace_f32(rv_obj, fn, "running_var", &failed);
    const npy_intp *xd = PyArray_DIMS(x);
    PyArrayObject *per_channel[4] = {w, b, rm, rv};
    const char *names[4] = {"weight", "bias", "running_mean", "running_var"};
    if (failed || expect_nonempty_chw(xd, fn, "x") < 0 ||
        expect_channels(fn, xd[1], per_channel, names, 4) < 0) {
        goto cleanup;
    }
    if (xd[0] * xd[2] * xd[3] < 2) {
        PyErr_Format(PyExc_ValueError,
                     "%s: expected more than 1 value per channel when training, got input shape "
                     "(%lld, %lld, %lld, %lld)",
                     fn, (long long)xd[0], (long long)xd[1], (long long)xd[2], (long long)xd[3]);
        goto cleanup;
    }
    npy_intp cd[1] = {xd[1]};
    if (!(y = (PyArrayObject *)PyArray_SimpleNew(4, xd, NPY_FLOAT32)) ||
        !(mean = (PyArrayObject *)PyArray_SimpleNew(1, cd, NPY_FLOAT32)) ||
        !(invstd = (PyArrayObject *)PyArray_SimpleNew(1, cd, NPY_FLOAT32))) {
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, batchnorm2d_forward_train(f32(y), f32(mean), f32(invstd), f32(rm),
                                                 f32(rv), f32(x), f32(w), f32(b), xd[0], xd[1],
                                                 xd[2] * xd[3], (float)momentum, (float)eps));
    if (check_status(status, fn) == 0) {
        result = PyTuple_Pack(3, y, mean, invstd);
    }
cleanup:
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(b);
    Py_XDECREF(rm);
    Py_XDECREF(rv);
    Py_XDECREF(y);
    Py_XDECREF(mean);
    Py_XDECREF(invstd);
    return result;
}

static PyObject *py_batch_norm2d_forward_eval(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "batch_norm2d_forward_eval";
    static char *kwlist[] = {"x", "weight", "bias", "running_mean", "running_var", "eps", NULL};
    PyObject *x_obj, *w_obj, *b_obj, *rm_obj, *rv_obj;
    double eps = 1e-5;
    int failed = 0;
    PyArrayObject *x = NULL, *w = NULL, *b = NULL, *rm = NULL, *rv = NULL, *y = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO|d:batch_norm2d_forward_eval", kwlist,
                                     &x_obj, &w_obj, &b_obj, &rm_obj, &rv_obj, &eps) ||
        check_eps(fn, eps) < 0 ||
        !(x = input_f32(x_obj, fn, "x", 4, "(N, C, H, W)")) ||
        !(rm = input_f32(rm_obj, fn, "running_mean", 1, "(C,)")) ||
        !(rv = input_f32(rv_obj, fn, "running_var", 1, "(C,)"))) {
        goto cleanup;
    }
    w = optional_f32(w_obj, fn, "weight", 1, "(C,)", &failed);
    b = failed ? NULL : optional_f32(b_obj, fn, "bias", 1, "(C,)", &failed);
    const npy_intp *xd = PyArray_DIMS(x);
    PyArrayObject *per_channel[4] = {w, b, rm, rv};
    const char *names[4] = {"weight", "bias", "running_mean", "running_var"};
    if (failed || expect_nonempty_chw(xd, fn, "x") < 0 ||
        expect_channels(fn, xd[1], per_channel, names, 4) < 0 ||
        !(y = (PyArrayObject *)PyArray_SimpleNew(4, xd, NPY_FLOAT32))) {
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, batchnorm2d_forward_eval(f32(y), f32(x), f32(rm), f32(rv), f32(w), f32(b),
                                                xd[0], xd[1], xd[2] * xd[3], (float)eps));
    if (check_status(status, fn) < 0) {
        Py_CLEAR(y);
    }
cleanup:
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(b);
    Py_XDECREF(rm);
    Py_XDECREF(rv);
    return (PyObject *)y;
}

static PyObject *py_batch_norm2d_backward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "batch_norm2d_backward";
    static char *kwlist[] = {"grad_out", "x", "weight", "mean", "invstd", "grad_weight",
                             "grad_bias", "training", "need_input_grad", NULL};
    PyObject *dy_obj, *x_obj, *w_obj, *m_obj, *is_obj, *dw_obj = Py_None, *db_obj = Py_None;
    PyObject *result = NULL;
    int training = 1, need_input_grad = 1, failed = 0;
    PyArrayObject *dy = NULL, *x = NULL, *w = NULL, *m = NULL, *is = NULL, *dw = NULL, *db = NULL;
    PyArrayObject *dx = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO|OOpp:batch_norm2d_backward", kwlist,
                                     &dy_obj, &x_obj, &w_obj, &m_obj, &is_obj, &dw_obj, &db_obj,
                                     &training, &need_input_grad) ||
        !(dy = input_f32(dy_obj, fn, "grad_out", 4, "(N, C, H, W)")) ||
        !(x = input_f32(x_obj, fn, "x", 4, "(N, C, H, W)")) ||
        !(m = input_f32(m_obj, fn, "mean", 1, "(C,)")) ||
        !(is = input_f32(is_obj, fn, "invstd", 1, "(C,)"))) {
        goto cleanup;
    }
    w = optional_f32(w_obj, fn, "weight", 1, "(C,)", &failed);
    dw = failed ? NULL : optional_inplace_f32(dw_obj, fn, "grad_weight", &failed);
    db = failed ? NULL : optional_inplace_f32(db_obj, fn, "grad_bias", &failed);
    const npy_intp *xd = PyArray_DIMS(x);
    PyArrayObject *per_channel[5] = {w, m, is, dw, db};
    const char *names[5] = {"weight", "mean", "invstd", "grad_weight", "grad_bias"};
    if (failed || expect_nonempty_chw(xd, fn, "x") < 0 ||
        expect_shape(dy, fn, "grad_out", 4, xd) < 0 ||
        expect_channels(fn, xd[1], per_channel, names, 5) < 0) {
        goto cleanup;
    }
    if (need_input_grad && !(dx = (PyArrayObject *)PyArray_EMPTY(4, xd, NPY_FLOAT32, 0))) {
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, batchnorm2d_backward(f32(dx), f32(dw), f32(db), f32(dy), f32(x), f32(w),
                                            f32(m), f32(is), xd[0], xd[1], xd[2] * xd[3],
                                            training));
    if (check_status(status, fn) == 0) {
        result = dx ? Py_NewRef(dx) : Py_NewRef(Py_None);
    }
cleanup:
    Py_XDECREF(dy);
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(m);
    Py_XDECREF(is);
    Py_XDECREF(dw);
    Py_XDECREF(db);
    Py_XDECREF(dx);
    return result;
}

/* ---------------------------------------------------------------- activations */

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

/* ---------------------------------------------------------------- linear */

static PyObject *py_linear_forward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "linear_forward";
    static char *kwlist[] = {"x", "weight", "bias", NULL};
    PyObject *x_obj, *w_obj, *b_obj = Py_None;
    int failed = 0;
    PyArrayObject *x = NULL, *w = NULL, *b = NULL, *y = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:linear_forward", kwlist, &x_obj, &w_obj,
                                     &b_obj) ||
        !(x = input_f32(x_obj, fn, "x", 2, "(N, IN)")) ||
        !(w = input_f32(w_obj, fn, "weight", 2, "(OUT, IN)"))) {
        goto cleanup;
    }
    b = optional_f32(b_obj, fn, "bias", 1, "(OUT,)", &failed);
    npy_intp wd[2] = {PyArray_DIM(w, 0), PyArray_DIM(x, 1)}, bd[1] = {wd[0]};
    if (failed || expect_shape(w, fn, "weight", 2, wd) < 0 ||
        (b && expect_shape(b, fn, "bias", 1, bd) < 0)) {
        goto cleanup;
    }
    npy_intp yd[2] = {PyArray_DIM(x, 0), wd[0]};
    if (!(y = (PyArrayObject *)PyArray_SimpleNew(2, yd, NPY_FLOAT32))) {
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, linear_forward(f32(y), f32(x), f32(w), f32(b), yd[0], wd[1], wd[0]));
    if (check_status(status, fn) < 0) {
        Py_CLEAR(y);
    }
cleanup:
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(b);
    return (PyObject *)y;
}

static PyObject *py_linear_backward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "linear_backward";
    static char *kwlist[] = {"grad_out", "x", "weight", "grad_weight", "grad_bias",
                             "need_input_grad", NULL};
    PyObject *dy_obj, *x_obj, *w_obj, *dw_obj = Py_None, *db_obj = Py_None, *result = NULL;
    int need_input_grad = 1, failed = 0;
    PyArrayObject *dy = NULL, *x = NULL, *w = NULL, *dw = NULL, *db = NULL, *dx = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|OOp:linear_backward", kwlist, &dy_obj,
                                     &x_obj, &w_obj, &dw_obj, &db_obj, &need_input_grad) ||
        !(dy = input_f32(dy_obj, fn, "grad_out", 2, "(N, OUT)")) ||
        !(x = input_f32(x_obj, fn, "x", 2, "(N, IN)")) ||
        !(w = input_f32(w_obj, fn, "weight", 2, "(OUT, IN)"))) {
        goto cleanup;
    }
    dw = optional_inplace_f32(dw_obj, fn, "grad_weight", &failed);
    db = failed ? NULL : optional_inplace_f32(db_obj, fn, "grad_bias", &failed);
    const npy_intp n = PyArray_DIM(x, 0), in = PyArray_DIM(x, 1), out = PyArray_DIM(w, 0);
    npy_intp wd[2] = {out, in}, yd[2] = {n, out}, bd[1] = {out};
    if (failed || expect_shape(w, fn, "weight", 2, wd) < 0 ||
        expect_shape(dy, fn, "grad_out", 2, yd) < 0 ||
        (dw && expect_shape(dw, fn, "grad_weight", 2, wd) < 0) ||
        (db && expect_shape(db, fn, "grad_bias", 1, bd) < 0)) {
        goto cleanup;
    }
    if (need_input_grad && !(dx = (PyArrayObject *)PyArray_ZEROS(2, PyArray_DIMS(x), NPY_FLOAT32,
                                                                 0))) {
        goto cleanup;
    }
    wt_status status;
    RUN_KERNEL(status, linear_backward(f32(dx), f32(dw), f32(db), f32(dy), f32(x), f32(w), n, in,
                                       out));
    if (check_status(status, fn) == 0) {
        result = dx ? Py_NewRef(dx) : Py_NewRef(Py_None);
    }
cleanup:
    Py_XDECREF(dy);
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(dw);
    Py_XDECREF(db);
    Py_XDECREF(dx);
    return result;
}

/* ---------------------------------------------------------------- loss and dropout */

/* What cross_entropy and soft_cross_entropy share once their labels or targets are
 * checked: the class weights, the gradient and the kernel call. */
static PyObject *run_cross_entropy(const char *fn, PyArrayObject *z, PyArrayObject *labels,
                                   PyArrayObject *targets, PyObject *w_obj, double smoothing,
                                   int need_grad) {
    PyObject *result = NULL;
    PyArrayObject *w = NULL, *grad = NULL;
    int failed = 0;
    const npy_intp n = PyArray_DIM(z, 0), k = PyArray_DIM(z, 1);
    npy_intp wd[1] = {k};
    if (!(smoothing >= 0.0 && smoothing <= 1.0)) {
        value_error("%s: label_smoothing: expected a number in [0, 1], got %g", fn, smoothing);
        goto cleanup;
    }
    if (k == 0) {
        PyErr_Format(PyExc_ValueError, "%s: logits: expected at least one class, got shape (%lld, 0)",
                     fn, (long long)n);
        goto cleanup;
    }
    w = optional_f32(w_obj, fn, "weight", 1, "(K,)", &failed);
    if (failed || (w && expect_shape(w, fn, "weight", 1, wd) < 0)) {
        goto cleanup;
    }
    if (need_grad && !(grad = (PyArrayObject *)PyArray_SimpleNew(2, PyArray_DIMS(z), NPY_FLOAT32))) {
        goto cleanup;
    }
    double loss = 0.0;
    wt_status status;
    RUN_KERNEL(status, cross_entropy_forward_backward(
                           &loss, f32(grad), f32(z),
                           labels ? (int64_t *)PyArray_DATA(labels) : NULL, f32(targets), f32(w),
                           n, k, (float)smoothing));
    if (status == WT_ERR_VALUE) {
        if (labels) {
            PyErr_Format(PyExc_ValueError, "%s: labels: expected class indices in [0, %lld)%s, "
                         "found one outside%s", fn, (long long)k, w ? " and finite weights >= 0" : "",
                         w ? " or a bad weight" : "");
        } else {
            PyErr_Format(PyExc_ValueError, "%s: targets: expected probabilities in [0, 1]%s, "
                         "found a value outside%s", fn, w ? " and finite weights >= 0" : "",
                         w ? " or a bad weight" : "");
        }
        goto cleanup;
    }
    if (check_status(status, fn) == 0) {
        result = Py_BuildValue("dO", loss, grad ? (PyObject *)grad : Py_None);
    }
cleanup:
    Py_XDECREF(w);
    Py_XDECREF(grad);
    return result;
}

static PyObject *py_cross_entropy(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "cross_entropy";
    static char *kwlist[] = {"logits", "labels", "label_smoothing", "need_grad", "weight", NULL};
    PyObject *z_obj, *t_obj, *w_obj = NULL, *result = NULL;
    double smoothing = 0.0;
    int need_grad = 1;
    PyArrayObject *z = NULL, *t = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|dpO:cross_entropy", kwlist, &z_obj, &t_obj,
                                     &smoothing, &need_grad, &w_obj) ||
        !(z = input_f32(z_obj, fn, "logits", 2, "(N, K)")) ||
        !(t = input_i64(t_obj, fn, "labels", 1))) {
        goto cleanup;
    }
    npy_intp td[1] = {PyArray_DIM(z, 0)};
    if (expect_shape(t, fn, "labels", 1, td) == 0) {
        result = run_cross_entropy(fn, z, t, NULL, w_obj, smoothing, need_grad);
    }
cleanup:
    Py_XDECREF(z);
    Py_XDECREF(t);
    return result;
}

static PyObject *py_soft_cross_entropy(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "soft_cross_entropy";
    static char *kwlist[] = {"logits", "targets", "label_smoothing", "need_grad", "weight", NULL};
    PyObject *z_obj, *t_obj, *w_obj = NULL, *result = NULL;
    double smoothing = 0.0;
    int need_grad = 1;
    PyArrayObject *z = NULL, *t = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|dpO:soft_cross_entropy", kwlist, &z_obj,
                                     &t_obj, &smoothing, &need_grad, &w_obj) ||
        !(z = input_f32(z_obj, fn, "logits", 2, "(N, K)")) ||
        !(t = input_f32(t_obj, fn, "targets", 2, "(N, K)"))) {
        goto cleanup;
    }
    if (expect_shape(t, fn, "targets", 2, PyArray_DIMS(z)) == 0) {
        result = run_cross_entropy(fn, z, NULL, t, w_obj, smoothing, need_grad);
    }
cleanup:
    Py_XDECREF(z);
    Py_XDECREF(t);
    return result;
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

/* ---------------------------------------------------------------- optimizer */

static PyObject *py_sgd_step(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "sgd_step";
    static char *kwlist[] = {"param", "grad", "momentum_buffer", "lr", "momentum", "dampening",
                             "weight_decay", "nesterov", "first_step", NULL};
    PyObject *p_obj, *g_obj, *buf_obj = Py_None, *lr_obj = NULL, *result = NULL;
    double lr, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
    int nesterov = 0, first_step = 0, failed = 0;
    PyArrayObject *param = NULL, *grad = NULL, *buf = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O$Odddpp:sgd_step", kwlist, &p_obj, &g_obj,
                                     &buf_obj, &lr_obj, &momentum, &dampening, &weight_decay,
                                     &nesterov, &first_step)) {
        return NULL;
    }
    if (!lr_obj) {
        PyErr_Format(PyExc_TypeError, "%s: the keyword argument lr is required", fn);
        return NULL;
    }
    lr = PyFloat_AsDouble(lr_obj);
    if (lr == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    if (!isfinite(lr) || lr < 0.0 || !isfinite(momentum) || momentum < 0.0 ||
        !isfinite(weight_decay) || weight_decay < 0.0 || !isfinite(dampening)) {
        value_error("%s: expected finite lr, momentum, weight_decay >= 0 and a finite "
                     "dampening, got lr=%g momentum=%g weight_decay=%g dampening=%g",
                     fn, lr, momentum, weight_decay, dampening);
        return NULL;
    }
    if (nesterov && (momentum <= 0.0 || dampening != 0.0)) {
        value_error("%s: Nesterov momentum requires a momentum > 0 and zero dampening, got "
                     "momentum=%g dampening=%g",
                     fn, momentum, dampening);
        return NULL;
    }
    if (!(param = inplace_f32(p_obj, fn, "param"))) {
        goto cleanup;
    }
    buf = optional_inplace_f32(buf_obj, fn, "momentum_buffer", &failed);
    if (failed) {
        goto cleanup;
    }
    if (momentum != 0.0 && !buf) {
        value_error("%s: momentum_buffer: expected an array shaped like param when momentum "
                     "is %g, got None",
                     fn, momentum);
        goto cleanup;
    }
    int ndim = PyArray_NDIM(param);
    if (!(grad = input_f32(g_obj, fn, "grad", ndim, "(shaped like param)")) ||
        expect_shape(grad, fn, "grad", ndim, PyArray_DIMS(param)) < 0 ||
        (buf && expect_shape(buf, fn, "momentum_buffer", ndim, PyArray_DIMS(param)) < 0)) {
        goto cleanup;
    }
    sgd_options opt = {.lr = (float)lr, .momentum = (float)momentum,
                       .dampening = (float)dampening, .weight_decay = (float)weight_decay,
                       .nesterov = nesterov};
    wt_status status;
    RUN_KERNEL(status, sgd_step(f32(param), f32(buf), f32(grad), PyArray_SIZE(param), &opt,
                                first_step));
    if (check_status(status, fn) == 0) {
        result = Py_NewRef(Py_None);
    }
cleanup:
    Py_XDECREF(param);
    Py_XDECREF(grad);
    Py_XDECREF(buf);
    return result;
}

/* ---------------------------------------------------------------- threads and build info */

static PyObject *py_set_num_threads(PyObject *Py_UNUSED(self), PyObject *arg) {
    if (!is_integer(arg)) {
        PyErr_Format(PyExc_TypeError, "set_num_threads: expected an int, got %s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    long long n = integer_value(arg);
    if (n < 1 || n > 1024) {
        PyErr_Format(PyExc_ValueError, "set_num_threads: expected 1 to 1024 threads, got %R",
                     arg);
        return NULL;
    }
    wt_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
    return PyLong_FromLong(wt_get_num_threads());
}

static PyObject *py_set_winograd(PyObject *Py_UNUSED(self), PyObject *arg) {
    if (!PyBool_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "set_winograd: expected True or False, got %s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    winograd_enabled = arg == Py_True;
    Py_RETURN_NONE;
}

static PyObject *py_get_winograd(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
    return PyBool_FromLong(winograd_enabled);
}

static PyObject *py_blas_info(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
    return Py_BuildValue("{ssss}", "config", wt_blas_config(), "corename", wt_blas_corename());
}

/* ---------------------------------------------------------------- array cache */

static void *cache_malloc(void *Py_UNUSED(ctx), size_t size) {
    return wt_cache_malloc(size);
}

static void *cache_calloc(void *Py_UNUSED(ctx), size_t nelem, size_t elsize) {
    return wt_cache_calloc(nelem, elsize);
}

static void *cache_realloc(void *Py_UNUSED(ctx), void *ptr, size_t new_size) {
    return wt_cache_realloc(ptr, new_size);
}

static void cache_free(void *Py_UNUSED(ctx), void *ptr, size_t Py_UNUSED(size)) {
    wt_cache_free(ptr);
}

static PyDataMem_Handler cache_handler = {
    "weitiao_block_cache",
    1,
    {NULL, cache_malloc, cache_calloc, cache_realloc, cache_free},
};

static PyObject *py_array_cache_handler(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
    return PyCapsule_New(&cache_handler, "mem_handler", NULL);
}

static PyObject *py_set_array_handler(PyObject *Py_UNUSED(self), PyObject *arg) {
    if (!PyCapsule_IsValid(arg, "mem_handler")) {
        PyErr_SetString(PyExc_TypeError,
                        "set_array_handler: expected a NumPy mem_handler capsule");
        return NULL;
    }
    return PyDataMem_SetHandler(arg);
}

static PyObject *py_array_cache_info(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
    return Py_BuildValue("{snsn}", "held", (Py_ssize_t)wt_cache_held(), "limit",
                         (Py_ssize_t)wt_cache_limit());
}

static PyObject *py_array_cache_clear(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
    wt_cache_clear();
    Py_RETURN_NONE;
}

static PyObject *py_set_array_cache_limit(PyObject *Py_UNUSED(self), PyObject *arg) {
    if (!is_integer(arg)) {
        PyErr_Format(PyExc_TypeError, "set_array_cache_limit: expected an int, got %s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    PyObject *index = PyNumber_Index(arg);
    long long bytes = index ? PyLong_AsLongLong(index) : -1;
    Py_XDECREF(index);
    if (PyErr_Occurred() || bytes < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError,
                     "set_array_cache_limit: expected a number of bytes >= 0, got %R", arg);
        return NULL;
    }
    wt_cache_set_limit((size_t)bytes);
    Py_RETURN_NONE;
}

#define KW(name, doc) {#name, (PyCFunction)(void (*)(void))py_##name, METH_VARARGS | METH_KEYWORDS, doc}

static PyMethodDef methods[] = {
    KW(conv2d_forward, "conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1, "
                       "groups=1) -> y (N, OC, OH, OW). padding: int, (ph, pw) or (top, bottom, "
                       "left, right)."),
    KW(conv2d_backward_data, "conv2d_backward_data(grad_out, weight, input_shape, stride=1, "
                             "padding=0, dilation=1, groups=1) -> grad_in (input_shape)."),
    KW(conv2d_backward_weight, "conv2d_backward_weight(grad_out, x, grad_weight, grad_bias=None, "
                               "stride=1, padding=0, dilation=1, groups=1): adds into "
                               "grad_weight and grad_bias in place."),
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
    KW(relu_forward, "relu_forward(x) -> max(x, 0)."),
    KW(relu_backward, "relu_backward(grad_out, y) -> grad_in, y the forward output."),
    KW(relu6_forward, "relu6_forward(x) -> min(max(x, 0), 6)."),
    KW(relu6_backward, "relu6_backward(grad_out, y) -> grad_in, y the forward output."),
    KW(add, "add(a, b) -> a + b, same shapes."),
    KW(linear_forward, "linear_forward(x (N, IN), weight (OUT, IN), bias=None) -> y (N, OUT)."),
    KW(linear_backward, "linear_backward(grad_out, x, weight, grad_weight=None, grad_bias=None, "
                        "need_input_grad=True) -> grad_in or None; adds into grad_weight and "
                        "grad_bias."),
    KW(cross_entropy, "cross_entropy(logits (N, K), labels (N,), label_smoothing=0.0, "
                      "need_grad=True, weight=None (K,)) -> (mean loss, grad of the mean loss "
                      "w.r.t. logits); torch.nn.functional.cross_entropy's weighted mean."),
    KW(soft_cross_entropy, "soft_cross_entropy(logits (N, K), targets (N, K) probabilities, "
                           "label_smoothing=0.0, need_grad=True, weight=None (K,)) -> (mean "
                           "loss, grad); the mean over rows, as torch for probability targets."),
    KW(dropout_forward, "dropout_forward(x, p, seed) -> (y, mask uint8)."),
    KW(dropout_backward, "dropout_backward(grad_out, mask, p) -> grad_in."),
    KW(sgd_step, "sgd_step(param, grad, momentum_buffer=None, *, lr, momentum=0, dampening=0, "
                 "weight_decay=0, nesterov=False, first_step=False): torch.optim.SGD's update "
                 "of one tensor, in place."),
    {"array_cache_handler", py_array_cache_handler, METH_NOARGS,
     "array_cache_handler() -> the NumPy memory-handler capsule of the block cache."},
    {"set_array_handler", py_set_array_handler, METH_O,
     "set_array_handler(capsule) -> the previous one: NumPy's allocator for this context."},
    {"array_cache_info", py_array_cache_info, METH_NOARGS,
     "array_cache_info() -> {'held': bytes in freed blocks, 'limit': bytes}."},
    {"array_cache_clear", py_array_cache_clear, METH_NOARGS,
     "array_cache_clear(): return every cached block to the system."},
    {"set_array_cache_limit", py_set_array_cache_limit, METH_O,
     "set_array_cache_limit(bytes): most bytes kept in freed blocks; 0 disables caching."},
    {"set_num_threads", py_set_num_threads, METH_O,
     "set_num_threads(n): threads for the kernels and the BLAS."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "get_num_threads() -> int."},
    {"set_winograd", py_set_winograd, METH_O,
     "set_winograd(enabled: bool): let 3x3 stride-1 convolutions use Winograd F(4x4, 3x3)."},
    {"get_winograd", py_get_winograd, METH_NOARGS, "get_winograd() -> bool."},
    {"blas_info", py_blas_info, METH_NOARGS,
     "blas_info() -> {'config': ..., 'corename': ...} of the linked OpenBLAS."},
    {NULL, NULL, 0, NULL},
};

static int module_exec(PyObject *Py_UNUSED(module)) {
    import_array1(-1);
    return 0;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "weitiao._C",
    .m_doc = "weitiao's C kernels: float32 NCHW arrays in, NumPy arrays out.",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC PyInit__C(void) {
    return PyModuleDef_Init(&moduledef);
}
