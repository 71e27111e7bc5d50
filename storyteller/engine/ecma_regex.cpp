// Compiles a pattern with std::regex exactly as llama.cpp does for tensor buffer overrides
// (`std::regex pattern(overrides->pattern)`: ECMAScript, the C++ standard library's dialect),
// so a pattern llama.cpp would refuse is refused before it gets there. Python's `re` is another
// dialect: it takes (?P<name>...), (?i), \A and lookbehinds, which std::regex does not.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <exception>
#include <regex>

static PyObject *regex_error(PyObject *, PyObject *args) {
    const char *pattern;
    if (!PyArg_ParseTuple(args, "y", &pattern)) {
        return nullptr;
    }
    try {
        std::regex compiled(pattern);
        (void)compiled;
    } catch (const std::exception &err) {
        return PyUnicode_FromString(err.what());
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"regex_error", regex_error, METH_VARARGS,
     "regex_error(pattern: bytes) -> str | None: why std::regex refuses the pattern, None when it compiles."},
    {nullptr, nullptr, 0, nullptr},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ecma_regex", nullptr, -1, methods};

PyMODINIT_FUNC PyInit__ecma_regex(void) { return PyModule_Create(&module); }
