/* The function tables of the boundary files, one per op family, each ending in a
 * {NULL, NULL, 0, NULL} sentinel; module.c adds them all to weitiao._C. */
#ifndef WT_PY_METHODS_H
#define WT_PY_METHODS_H

#include "args.h"

/* A table entry for py_<name>, a function taking positional and keyword arguments. */
#define KW(name, doc) {#name, (PyCFunction)(void (*)(void))py_##name, METH_VARARGS | METH_KEYWORDS, doc}

/* Defines py_<name> as impl(args, kw, ...): the entries of a family that share one
 * implementation and differ in the constants passed after kw. */
#define ENTRY_OF(name, impl, ...)                                                           \
    static PyObject *py_##name(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kw) { \
        return impl(args, kw, __VA_ARGS__);                                                 \
    }

extern PyMethodDef wt_conv_methods[];       /* conv.c */
extern PyMethodDef wt_pool_methods[];       /* pool.c */
extern PyMethodDef wt_norm_methods[];       /* norm.c */
extern PyMethodDef wt_activation_methods[]; /* activation.c: also dropout */
extern PyMethodDef wt_linear_methods[];     /* linear.c */
extern PyMethodDef wt_loss_methods[];       /* loss.c */
extern PyMethodDef wt_optim_methods[];      /* optim.c */
extern PyMethodDef wt_runtime_methods[];    /* runtime.c */

#endif
