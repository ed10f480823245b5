/* The loss entry points: cross_entropy (class labels) and soft_cross_entropy
 * (probability targets), over loss.c. */
#include "args.h"
#include "methods.h"

#include "loss.h"

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

PyMethodDef wt_loss_methods[] = {
    KW(cross_entropy, "cross_entropy(logits (N, K), labels (N,), label_smoothing=0.0, "
                      "need_grad=True, weight=None (K,)) -> (mean loss, grad of the mean loss "
                      "w.r.t. logits); torch.nn.functional.cross_entropy's weighted mean."),
    KW(soft_cross_entropy, "soft_cross_entropy(logits (N, K), targets (N, K) probabilities, "
                           "label_smoothing=0.0, need_grad=True, weight=None (K,)) -> (mean "
                           "loss, grad); the mean over rows, as torch for probability targets."),
    {NULL, NULL, 0, NULL},
};
