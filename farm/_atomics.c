/*
 * farm._atomics: atomic operations on int64 cells of a shared mapping.
 *
 * Python cannot do an atomic read-modify-write on memory shared between
 * processes; this module does, with the compiler's __atomic builtins
 * (sequentially consistent, lock-free on x86-64 and arm64). farm uses it
 * for what must be one number for all workers (a server's connections and
 * queue, a frontend's connections, stick-table counters): see farm/atomics.py,
 * which falls back to a lock when this module is not built.
 *
 * Cells(buffer) wraps a writable buffer (an mmap) whose start is 8-byte
 * aligned; cell i is the int64 at byte offset 8*i. Every method checks i.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int64_t *base;
    Py_ssize_t n;
    int held;
} Cells;

static int
Cells_init(Cells *self, PyObject *args, PyObject *kwds)
{
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "O", &obj))
        return -1;
    if (self->held) {
        PyBuffer_Release(&self->view);
        self->held = 0;
    }
    if (PyObject_GetBuffer(obj, &self->view, PyBUF_WRITABLE) < 0)
        return -1;
    self->held = 1;
    if (((uintptr_t)self->view.buf & 7) != 0) {
        PyErr_SetString(PyExc_ValueError, "buffer is not 8-byte aligned");
        return -1;
    }
    self->base = (int64_t *)self->view.buf;
    self->n = self->view.len / 8;
    return 0;
}

static void
Cells_dealloc(Cells *self)
{
    if (self->held)
        PyBuffer_Release(&self->view);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The cell named by args[k], or NULL with an exception set. */
static int64_t *
cell(Cells *self, PyObject *const *args, Py_ssize_t k)
{
    Py_ssize_t i;
    if (!self->held) {
        PyErr_SetString(PyExc_ValueError, "released");
        return NULL;
    }
    i = PyLong_AsSsize_t(args[k]);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i < 0 || i >= self->n) {
        PyErr_SetString(PyExc_IndexError, "cell index out of range");
        return NULL;
    }
    return self->base + i;
}

static int
int64_arg(PyObject *o, int64_t *out)
{
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = (int64_t)v;
    return 0;
}

#define NARGS(n, name)                                                   \
    if (nargs != (n)) {                                                  \
        PyErr_SetString(PyExc_TypeError, name " takes " #n " arguments"); \
        return NULL;                                                     \
    }

static PyObject *
Cells_load(Cells *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p;
    NARGS(1, "load");
    if (!(p = cell(self, args, 0)))
        return NULL;
    return PyLong_FromLongLong(__atomic_load_n(p, __ATOMIC_SEQ_CST));
}

static PyObject *
Cells_store(Cells *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p, v;
    NARGS(2, "store");
    if (!(p = cell(self, args, 0)) || int64_arg(args[1], &v) < 0)
        return NULL;
    __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

static PyObject *
Cells_add(Cells *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p, d;
    NARGS(2, "add");
    if (!(p = cell(self, args, 0)) || int64_arg(args[1], &d) < 0)
        return NULL;
    return PyLong_FromLongLong(__atomic_add_fetch(p, d, __ATOMIC_SEQ_CST));
}

static PyObject *
Cells_cas(Cells *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p, expected, desired;
    NARGS(3, "cas");
    if (!(p = cell(self, args, 0)) || int64_arg(args[1], &expected) < 0
            || int64_arg(args[2], &desired) < 0)
        return NULL;
    if (__atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        Py_RETURN_TRUE;
    Py_RETURN_FALSE;
}

/* inc_below(i, limit): add 1 to cell i if it is below limit (limit <= 0:
 * no limit); the new value if it was added, else 0. The test and the add
 * are one atomic step, so N processes never take more than limit slots
 * between them. */
static PyObject *
Cells_inc_below(Cells *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p, limit, cur;
    NARGS(2, "inc_below");
    if (!(p = cell(self, args, 0)) || int64_arg(args[1], &limit) < 0)
        return NULL;
    if (limit <= 0)
        return PyLong_FromLongLong(__atomic_add_fetch(p, 1, __ATOMIC_SEQ_CST));
    cur = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (cur < limit) {
        if (__atomic_compare_exchange_n(p, &cur, cur + 1, 1, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return PyLong_FromLongLong(cur + 1);
    }
    return PyLong_FromLong(0);
}

/* raise_to(i, v): cell i = max(cell i, v), atomically (maxima: smax...). */
static PyObject *
Cells_raise_to(Cells *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p, v, cur;
    NARGS(2, "raise_to");
    if (!(p = cell(self, args, 0)) || int64_arg(args[1], &v) < 0)
        return NULL;
    cur = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (cur < v) {
        if (__atomic_compare_exchange_n(p, &cur, v, 1, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            break;
    }
    Py_RETURN_NONE;
}

static PyObject *
Cells_release(Cells *self, PyObject *unused)
{
    if (self->held) {
        PyBuffer_Release(&self->view);
        self->held = 0;
        self->base = NULL;
        self->n = 0;
    }
    Py_RETURN_NONE;
}

static PyObject *
Cells_len(Cells *self, void *closure)
{
    return PyLong_FromSsize_t(self->n);
}

static PyMethodDef Cells_methods[] = {
    {"load", (PyCFunction)(void (*)(void))Cells_load, METH_FASTCALL, "load(i) -> value"},
    {"store", (PyCFunction)(void (*)(void))Cells_store, METH_FASTCALL, "store(i, v)"},
    {"add", (PyCFunction)(void (*)(void))Cells_add, METH_FASTCALL, "add(i, d) -> new value"},
    {"cas", (PyCFunction)(void (*)(void))Cells_cas, METH_FASTCALL,
     "cas(i, expected, new) -> True if cell i held expected and now holds new"},
    {"inc_below", (PyCFunction)(void (*)(void))Cells_inc_below, METH_FASTCALL,
     "inc_below(i, limit) -> the new value if cell i was below limit and got 1 added, else 0"},
    {"raise_to", (PyCFunction)(void (*)(void))Cells_raise_to, METH_FASTCALL,
     "raise_to(i, v): cell i = max(cell i, v)"},
    {"release", (PyCFunction)Cells_release, METH_NOARGS, "let the buffer go (before closing it)"},
    {NULL}
};

static PyGetSetDef Cells_getset[] = {
    {"size", (getter)Cells_len, NULL, "number of cells", NULL},
    {NULL}
};

static PyTypeObject CellsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "farm._atomics.Cells",
    .tp_basicsize = sizeof(Cells),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Atomic int64 cells over a shared writable buffer.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Cells_init,
    .tp_dealloc = (destructor)Cells_dealloc,
    .tp_methods = Cells_methods,
    .tp_getset = Cells_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "farm._atomics",
    "Atomic operations on int64 cells of a shared mapping.", -1, NULL
};

PyMODINIT_FUNC
PyInit__atomics(void)
{
    PyObject *m;
    if (PyType_Ready(&CellsType) < 0)
        return NULL;
    m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&CellsType);
    if (PyModule_AddObject(m, "Cells", (PyObject *)&CellsType) < 0) {
        Py_DECREF(&CellsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
