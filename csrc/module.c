/* weitiao._C: the module itself. Its functions live in csrc/py/, one file per op family,
 * each exporting a table of them; this file gathers the tables and imports NumPy's C API
 * for all of them. */
#define WT_IMPORT_ARRAY
#include "py/args.h"
#include "py/methods.h"

static PyMethodDef *const families[] = {
    wt_conv_methods,   wt_pool_methods, wt_norm_methods,  wt_activation_methods,
    wt_linear_methods, wt_loss_methods, wt_optim_methods, wt_runtime_methods,
};

static int module_exec(PyObject *module) {
    import_array1(-1);
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        if (PyModule_AddFunctions(module, families[i]) < 0) {
            return -1;
        }
    }
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
    .m_slots = slots,
};

PyMODINIT_FUNC PyInit__C(void) {
    return PyModuleDef_Init(&moduledef);
}
