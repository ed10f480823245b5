/* The loss entry points: cross_entropy (class labels) and soft_cross_entropy
 * (probability targets), over loss.c. */
#include "args.h"
#include "methods.h"

#include "loss.h"

/* Both entry points: soft picks targets (N, K) probabilities over labels (N,) class
 * indices; the rest (smoothing, class weights, the gradient) is the same. */
static PyObject *cross_entropy_py(PyObject *args, PyObject *kw, int soft) {
    static char *label_kwlist[] = {"logits", "labels", "label_smoothing", "need_grad", "weight",
                                   NULL};
    static char *target_kwlist[] = {"logits", "targets", "label_smoothing", "need_grad",
                                    "weight", NULL};
    const char *fn = soft ? "soft_cross_entropy" : "cross_entropy";
    const char *t_name = soft ? "targets" : "labels";
    PyObject *z_obj, *t_obj, *w_obj = NULL, *result = NULL;
    double smoothing = 0.0;
    int need_grad = 1;
    PyArrayObject *z = NULL, *t = NULL, *w = NULL, *grad = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw,
                                     soft ? "OO|dpO:soft_cross_entropy" : "OO|dpO:cross_entropy",
                                     soft ? target_kwlist : label_kwlist, &z_obj, &t_obj,
                                     &smoothing, &need_grad, &w_obj) ||
        !(z = input_f32(z_obj, fn, "logits", 2, "(N, K)")) ||
        !(t = soft ? input_f32(t_obj, fn, t_name, 2, "(N, K)") : input_i64(t_obj, fn, t_name, 1)) ||
        expect_shape(t, fn, t_name, soft ? 2 : 1, PyArray_DIMS(z)) < 0) {
        goto cleanup;
    }
    const npy_intp n = PyArray_DIM(z, 0), k = PyArray_DIM(z, 1);
    npy_intp wd[1] = {k};
    if (expect_unit_interval(fn, "label_smoothing", "a number", smoothing) < 0) {
        goto cleanup;
    }
    if (k == 0) {
        PyErr_Format(PyExc_ValueError, "%s: logits: expected at least one class, got shape (%lld, 0)",
                     fn, (long long)n);
        goto cleanup;
    }
    if (optional_f32(&w, w_obj, fn, "weight", 1, "(K,)") < 0 ||
        (w && expect_shape(w, fn, "weight", 1, wd) < 0) ||
        (need_grad && !(grad = new_f32(2, PyArray_DIMS(z))))) {
        goto cleanup;
    }
    double loss = 0.0;
    wt_status status;
    RUN_KERNEL(status, cross_entropy_forward_backward(
                           &loss, f32(grad), f32(z), soft ? NULL : (int64_t *)PyArray_DATA(t),
                           soft ? f32(t) : NULL, f32(w), n, k, (float)smoothing));
    if (status == WT_ERR_VALUE) {
        if (!soft) {
            PyErr_Format(PyExc_ValueError, "%s: labels: expected class indices in [0, %lld)%s, "
                         "found one outside%s", fn, (long long)k, w ? " and finite weights >= 0" : "",
                         w ? " or a bad weight" : "");
        } else {
            PyErr_Format(PyExc_ValueError, "%s: targets: expected probabilities in [0, 1]%s, "
                         "found a value outside%s", fn, w ? " and finite weights >= 0" : "",
                         w ? " or a bad weight" : "");
        }
    } else if (check_status(status, fn) == 0) {
        result = Py_BuildValue("dO", loss, grad ? (PyObject *)grad : Py_None);
    }
cleanup:
    RELEASE(z, t, w, grad);
    return result;
}

ENTRY_OF(cross_entropy, cross_entropy_py, 0)
ENTRY_OF(soft_cross_entropy, cross_entropy_py, 1)

PyMethodDef wt_loss_methods[] = {
    KW(cross_entropy, "cross_entropy(logits (N, K), labels (N,), label_smoothing=0.0, "
                      "need_grad=True, weight=None (K,)) -> (mean loss, grad of the mean loss "
                      "w.r.t. logits); torch.nn.functional.cross_entropy's weighted mean."),
    KW(soft_cross_entropy, "soft_cross_entropy(logits (N, K), targets (N, K) probabilities, "
                           "label_smoothing=0.0, need_grad=True, weight=None (K,)) -> (mean "
                           "loss, grad); the mean over rows, as torch for probability targets."),
    {NULL, NULL, 0, NULL},
};
