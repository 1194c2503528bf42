/*
 * KeyIds' two probes in C (see collector/rib/keymap.py, whose Python functions of the same names
 * are the reference and the fallback when this is not built).
 *
 * The table is KeyIds' own (slots, values, shift) tuple: array('Q') of key + 1 (0 = empty),
 * array('i') of ids, Fibonacci hashing by `shift`, linear probing. Read and written through the
 * arrays' buffers, so both implementations share one layout. A probe costs a fraction of the
 * interpreted loop's time; the RIB probes once per prefix an update names.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#define GOLDEN 0x9E3779B97F4A7C15ull

typedef struct {
    Py_buffer slots;  /* uint64: key + 1, 0 = empty */
    Py_buffer values; /* int32: the ids */
    int shift;
    Py_ssize_t size;
} Table;

static void close_table(Table *t) {
    PyBuffer_Release(&t->slots);
    PyBuffer_Release(&t->values);
}

/* Opens (slots, values, shift), checking what the probes rely on: 8- and 4-byte items, as many
 * values as slots, 2**(64 - shift) of them. */
static int open_table(PyObject *table, Table *t, int writable) {
    if (!PyTuple_CheckExact(table) || PyTuple_GET_SIZE(table) != 3) {
        PyErr_SetString(PyExc_TypeError, "table must be a (slots, values, shift) tuple");
        return -1;
    }
    long shift = PyLong_AsLong(PyTuple_GET_ITEM(table, 2));
    if (shift == -1 && PyErr_Occurred()) return -1;
    int flags = PyBUF_FORMAT | PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(PyTuple_GET_ITEM(table, 0), &t->slots, flags) < 0) return -1;
    if (PyObject_GetBuffer(PyTuple_GET_ITEM(table, 1), &t->values, flags) < 0) {
        PyBuffer_Release(&t->slots);
        return -1;
    }
    t->shift = (int)shift;
    t->size = t->slots.itemsize == 8 ? t->slots.len / 8 : 0;
    if (shift < 1 || shift > 63 || t->values.itemsize != 4 || t->values.len / 4 != t->size ||
        t->size != ((Py_ssize_t)1 << (64 - shift))) {
        close_table(t);
        PyErr_SetString(PyExc_ValueError, "not a KeyIds table");
        return -1;
    }
    return 0;
}

/* The stored form of a key (key + 1), 0 with an exception set when it is out of range. */
static uint64_t stored_key(PyObject *key) {
    unsigned long long value = PyLong_AsUnsignedLongLong(key);
    if (value == (unsigned long long)-1) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_OverflowError, "key must be below 2**64 - 1");
        return 0;
    }
    return (uint64_t)value + 1;
}

static inline Py_ssize_t home(uint64_t stored, int shift) { return (Py_ssize_t)((stored * GOLDEN) >> shift); }

static PyObject *probe(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "probe(table, key)");
        return NULL;
    }
    uint64_t stored = stored_key(args[1]);
    Table t;
    if (!stored || open_table(args[0], &t, 0) < 0) return NULL;
    const uint64_t *slots = t.slots.buf;
    const int32_t *values = t.values.buf;
    Py_ssize_t mask = t.size - 1, index = home(stored, t.shift);
    long found = -1;
    for (Py_ssize_t tries = 0; tries < t.size; tries++, index = (index + 1) & mask) {
        if (slots[index] == stored) {
            found = values[index];
            break;
        }
        if (!slots[index]) break;
    }
    close_table(&t);
    return PyLong_FromLong(found);
}

static PyObject *place(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "place(table, key, value)");
        return NULL;
    }
    uint64_t stored = stored_key(args[1]);
    if (!stored) return NULL;
    long value = PyLong_AsLong(args[2]);
    if (value == -1 && PyErr_Occurred()) return NULL;
    if (value < INT32_MIN || value > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "value must fit in 32 bits");
        return NULL;
    }
    Table t;
    if (open_table(args[0], &t, 1) < 0) return NULL;
    uint64_t *slots = t.slots.buf;
    int32_t *values = t.values.buf;
    Py_ssize_t mask = t.size - 1, index = home(stored, t.shift), tries = 0;
    while (slots[index] && tries++ < t.size) index = (index + 1) & mask;
    int full = slots[index] != 0;
    if (!full) {
        values[index] = (int32_t)value; /* the value first, as keymap._place writes it */
        slots[index] = stored;
    }
    close_table(&t);
    if (full) {
        PyErr_SetString(PyExc_ValueError, "KeyIds table is full");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"probe", (PyCFunction)(void (*)(void))probe, METH_FASTCALL,
     "probe(table, key): the id stored for key, -1 if none."},
    {"place", (PyCFunction)(void (*)(void))place, METH_FASTCALL,
     "place(table, key, value): store a key not in the table yet in its first free slot."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_keymap_fast", "KeyIds probes in C (see collector/rib/keymap.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__keymap_fast(void) { return PyModule_Create(&module_def); }
