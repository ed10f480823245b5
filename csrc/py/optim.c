/* The optimizer's entry point: sgd_step over optim.c. */
#include "args.h"
#include "methods.h"

#include <math.h>

#include "optim.h"

static PyObject *py_sgd_step(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) {
    static const char *fn = "sgd_step";
    static char *kwlist[] = {"param", "grad", "momentum_buffer", "lr", "momentum", "dampening",
                             "weight_decay", "nesterov", "first_step", NULL};
    PyObject *p_obj, *g_obj, *buf_obj = Py_None, *lr_obj = NULL, *result = NULL;
    double lr, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
    int nesterov = 0, first_step = 0;
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
    if (!(param = inplace_f32(p_obj, fn, "param")) ||
        optional_inplace_f32(&buf, buf_obj, fn, "momentum_buffer") < 0) {
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
    RUN_KERNEL_RETURN(
        result, fn,
        sgd_step(f32(param), f32(buf), f32(grad), PyArray_SIZE(param), &opt, first_step),
        Py_NewRef(Py_None));
cleanup:
    RELEASE(param, grad, buf);
    return result;
}

PyMethodDef wt_optim_methods[] = {
    KW(sgd_step, "sgd_step(param, grad, momentum_buffer=None, *, lr, momentum=0, dampening=0, "
                 "weight_decay=0, nesterov=False, first_step=False): torch.optim.SGD's update "
                 "of one tensor, in place."),
    {NULL, NULL, 0, NULL},
};
