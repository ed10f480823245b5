/* The convolution entry points: conv2d_forward, conv2d_backward_data and
 * conv2d_backward_weight, over conv2d.c (which picks the 1x1, im2col, depthwise.c or
 * winograd.c path for each shape), and the switch for the Winograd path. */
#include "args.h"
#include "methods.h"

#include <string.h>

#include "conv2d.h"
#include "threads.h"

#define WEIGHT_LAYOUT "(OC, C/groups, KH, KW)"

/* What the three entry points share: the hyperparameters as passed (NULL where absent:
 * stride 1, padding 0, dilation 1, groups 1), then what conv_prepare derives from them,
 * and the workspace. The thread count is read once, so the workspace is sized for the
 * threads the kernel runs on. */
typedef struct {
    PyObject *stride, *padding, *dilation, *groups;
    conv2d_shape s;
    npy_intp yd[4]; /* the output's (N, OC, OH, OW) */
    int nthreads;
    float *ws;
} conv_call;

/* Whether 3x3 stride-1 convolutions may take the Winograd path. set_winograd changes it
 * under the GIL, and each conv call reads it once into its conv2d_shape, so a workspace
 * sized for one path is never used by the other. */
static int winograd = 1;

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

/* Reads the thread count, then fills c->s and c->yd from x's and weight's dims and the
 * hyperparameters, with messages that name what does not fit. */
static int conv_prepare(conv_call *c, const char *fn, const char *wname, const npy_intp *xd,
                        const npy_intp *wd) {
    int64_t st[2] = {1, 1}, dl[2] = {1, 1}, pad[4] = {0, 0, 0, 0}, g = 1;
    conv2d_shape *s = &c->s;
    c->nthreads = wt_get_num_threads();
    if ((c->stride && parse_ints(c->stride, fn, "stride", st, 2, 1) < 0) ||
        (c->dilation && parse_ints(c->dilation, fn, "dilation", dl, 2, 1) < 0) ||
        (c->padding && parse_padding(c->padding, fn, pad) < 0) ||
        (c->groups && parse_ints(c->groups, fn, "groups", &g, 1, 1) < 0)) {
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
                        .groups = groups, .no_winograd = !winograd};
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
    const npy_intp yd[4] = {s->n, s->oc, s->oh, s->ow};
    memcpy(c->yd, yd, sizeof(yd));
    return check_size(c->yd, 4, fn, "the output");
}

/* Allocates the workspace c's kernel needs on c->nthreads threads: 0, or -1 with
 * MemoryError. */
static int conv_workspace(conv_call *c) {
    c->ws = alloc_workspace(conv2d_workspace_size(&c->s, c->nthreads));
    return c->ws ? 0 : -1;
}

#define CONV_KWARGS "stride", "padding", "dilation", "groups"

static PyObject *py_conv2d_forward(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "conv2d_forward";
    static char *kwlist[] = {"x", "weight", "bias", CONV_KWARGS, NULL};
    PyObject *x_obj, *w_obj, *b_obj = Py_None, *result = NULL;
    PyArrayObject *x = NULL, *w = NULL, *b = NULL, *y = NULL;
    conv_call c = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOOOO:conv2d_forward", kwlist, &x_obj, &w_obj,
                                     &b_obj, &c.stride, &c.padding, &c.dilation, &c.groups) ||
        !(x = input_f32(x_obj, fn, "x", 4, "(N, C, H, W)")) ||
        !(w = input_f32(w_obj, fn, "weight", 4, WEIGHT_LAYOUT)) ||
        optional_f32(&b, b_obj, fn, "bias", 1, "(OC,)") < 0 ||
        conv_prepare(&c, fn, "weight", PyArray_DIMS(x), PyArray_DIMS(w)) < 0) {
        goto cleanup;
    }
    npy_intp bd[1] = {c.s.oc};
    if ((b && expect_shape(b, fn, "bias", 1, bd) < 0) || !(y = new_f32(4, c.yd)) ||
        conv_workspace(&c) < 0) {
        goto cleanup;
    }
    RUN_KERNEL_RETURN(result, fn,
                      conv2d_forward(f32(y), c.ws, f32(x), f32(w), f32(b), &c.s, c.nthreads),
                      Py_NewRef(y));
cleanup:
    PyMem_RawFree(c.ws);
    RELEASE(x, w, b, y);
    return result;
}

static PyObject *py_conv2d_backward_data(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "conv2d_backward_data";
    static char *kwlist[] = {"grad_out", "weight", "input_shape", CONV_KWARGS, NULL};
    PyObject *dy_obj, *w_obj, *shape_obj, *result = NULL;
    PyArrayObject *dy = NULL, *w = NULL, *dx = NULL;
    conv_call c = {NULL};
    npy_intp xd[4];
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|OOOO:conv2d_backward_data", kwlist, &dy_obj,
                                     &w_obj, &shape_obj, &c.stride, &c.padding, &c.dilation,
                                     &c.groups) ||
        !(dy = input_f32(dy_obj, fn, "grad_out", 4, "(N, OC, OH, OW)")) ||
        !(w = input_f32(w_obj, fn, "weight", 4, WEIGHT_LAYOUT)) ||
        parse_shape4(shape_obj, fn, "input_shape", xd) < 0 ||
        conv_prepare(&c, fn, "weight", xd, PyArray_DIMS(w)) < 0 ||
        expect_shape(dy, fn, "grad_out", 4, c.yd) < 0 || check_size(xd, 4, fn, "grad_in") < 0 ||
        !(dx = new_f32(4, xd)) || conv_workspace(&c) < 0) {
        goto cleanup;
    }
    RUN_KERNEL_RETURN(result, fn,
                      conv2d_backward_data(f32(dx), c.ws, f32(dy), f32(w), &c.s, c.nthreads),
                      Py_NewRef(dx));
cleanup:
    PyMem_RawFree(c.ws);
    RELEASE(dy, w, dx);
    return result;
}

static PyObject *py_conv2d_backward_weight(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "conv2d_backward_weight";
    static char *kwlist[] = {"grad_out", "x", "grad_weight", "grad_bias", CONV_KWARGS, NULL};
    PyObject *dy_obj, *x_obj, *dw_obj, *db_obj = Py_None, *result = NULL;
    PyArrayObject *dy = NULL, *x = NULL, *dw = NULL, *db = NULL;
    conv_call c = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|OOOOO:conv2d_backward_weight", kwlist,
                                     &dy_obj, &x_obj, &dw_obj, &db_obj, &c.stride, &c.padding,
                                     &c.dilation, &c.groups) ||
        !(dy = input_f32(dy_obj, fn, "grad_out", 4, "(N, OC, OH, OW)")) ||
        !(x = input_f32(x_obj, fn, "x", 4, "(N, C, H, W)")) ||
        !(dw = inplace_f32(dw_obj, fn, "grad_weight")) ||
        optional_inplace_f32(&db, db_obj, fn, "grad_bias") < 0 ||
        expect_ndim(dw, fn, "grad_weight", 4, WEIGHT_LAYOUT) < 0 ||
        conv_prepare(&c, fn, "grad_weight", PyArray_DIMS(x), PyArray_DIMS(dw)) < 0) {
        goto cleanup;
    }
    npy_intp bd[1] = {c.s.oc};
    if (expect_shape(dy, fn, "grad_out", 4, c.yd) < 0 ||
        (db && expect_shape(db, fn, "grad_bias", 1, bd) < 0) || conv_workspace(&c) < 0) {
        goto cleanup;
    }
    RUN_KERNEL_RETURN(
        result, fn,
        conv2d_backward_weight(f32(dw), f32(db), c.ws, f32(dy), f32(x), &c.s, c.nthreads),
        Py_NewRef(Py_None));
cleanup:
    PyMem_RawFree(c.ws);
    RELEASE(dy, x, dw, db);
    return result;
}

static PyObject *py_set_winograd(PyObject *Py_UNUSED(self), PyObject *arg) {
    if (!PyBool_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "set_winograd: expected True or False, got %s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    winograd = arg == Py_True;
    Py_RETURN_NONE;
}

static PyObject *py_get_winograd(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
    return PyBool_FromLong(winograd);
}

PyMethodDef wt_conv_methods[] = {
    KW(conv2d_forward, "conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1, "
                       "groups=1) -> y (N, OC, OH, OW). padding: int, (ph, pw) or (top, bottom, "
                       "left, right)."),
    KW(conv2d_backward_data, "conv2d_backward_data(grad_out, weight, input_shape, stride=1, "
                             "padding=0, dilation=1, groups=1) -> grad_in (input_shape)."),
    KW(conv2d_backward_weight, "conv2d_backward_weight(grad_out, x, grad_weight, grad_bias=None, "
                               "stride=1, padding=0, dilation=1, groups=1): adds into "
                               "grad_weight and grad_bias in place."),
    {"set_winograd", py_set_winograd, METH_O,
     "set_winograd(enabled: bool): let 3x3 stride-1 convolutions use Winograd F(4x4, 3x3)."},
    {"get_winograd", py_get_winograd, METH_NOARGS, "get_winograd() -> bool."},
    {NULL, NULL, 0, NULL},
};
