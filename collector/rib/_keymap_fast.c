/*
 * KeyIds' two probes in C (see collector/rib/keymap.py, whose Python functions of the same names
 * are the reference and the fallback when this is not built).
 *
 * The table is KeyIds' own (slots, shift) tuple: array('I') of (id + 1) << 6 | length per slot
 * (0 = empty), Fibonacci hashing of ((network << 8 | length) + 1) by `shift`, linear probing; the
 * network of an id is read from the owner's array('I') of networks. Read and written through the
 * arrays' buffers, so both implementations share one layout. A probe costs a fraction of the
 * interpreted loop's time; the RIB probes once per prefix an update names.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#define GOLDEN 0x9E3779B97F4A7C15ull
#define LENGTH_BITS 6
#define LENGTH_MASK 63u

typedef struct {
    Py_buffer slots; /* uint32: (id + 1) << 6 | length, 0 = empty */
    int shift;
    Py_ssize_t size;
} Table;

/* Opens (slots, shift), checking what the probes rely on: 4-byte slots, 2**(64 - shift) of them. */
static int open_table(PyObject *table, Table *t, int writable) {
    if (!PyTuple_CheckExact(table) || PyTuple_GET_SIZE(table) != 2) {
        PyErr_SetString(PyExc_TypeError, "table must be a (slots, shift) tuple");
        return -1;
    }
    long shift = PyLong_AsLong(PyTuple_GET_ITEM(table, 1));
    if (shift == -1 && PyErr_Occurred()) return -1;
    int flags = PyBUF_FORMAT | PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(PyTuple_GET_ITEM(table, 0), &t->slots, flags) < 0) return -1;
    t->shift = (int)shift;
    t->size = t->slots.itemsize == 4 ? t->slots.len / 4 : 0;
    if (shift < 33 || shift > 63 || t->size != ((Py_ssize_t)1 << (64 - shift))) {
        PyBuffer_Release(&t->slots);
        PyErr_SetString(PyExc_ValueError, "not a KeyIds table");
        return -1;
    }
    return 0;
}

/* network (< 2**32) and length (< 64) from Python ints; -1 with an exception set if out of range. */
static int prefix_args(PyObject *network_obj, PyObject *length_obj, uint32_t *network, uint32_t *length) {
    unsigned long long net = PyLong_AsUnsignedLongLong(network_obj);
    if (net == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    long len = PyLong_AsLong(length_obj);
    if (len == -1 && PyErr_Occurred()) return -1;
    if (net > UINT32_MAX || len < 0 || len > (long)LENGTH_MASK) {
        PyErr_SetString(PyExc_OverflowError, "network must fit 32 bits and length 6");
        return -1;
    }
    *network = (uint32_t)net;
    *length = (uint32_t)len;
    return 0;
}

static inline Py_ssize_t home(uint32_t network, uint32_t length, int shift) {
    uint64_t stored = (((uint64_t)network << 8) | length) + 1;
    return (Py_ssize_t)((stored * GOLDEN) >> shift);
}

static PyObject *probe(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "probe(table, networks, network, length)");
        return NULL;
    }
    uint32_t network, length;
    if (prefix_args(args[2], args[3], &network, &length) < 0) return NULL;
    Table t;
    if (open_table(args[0], &t, 0) < 0) return NULL;
    Py_buffer networks;
    if (PyObject_GetBuffer(args[1], &networks, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&t.slots);
        return NULL;
    }
    if (networks.itemsize != 4) {
        PyBuffer_Release(&networks);
        PyBuffer_Release(&t.slots);
        PyErr_SetString(PyExc_ValueError, "networks must hold 4-byte items");
        return NULL;
    }
    const uint32_t *slots = t.slots.buf, *nets = networks.buf;
    Py_ssize_t mask = t.size - 1, index = home(network, length, t.shift), known = networks.len / 4;
    long found = -1;
    int torn = 0;
    for (Py_ssize_t tries = 0; tries < t.size; tries++, index = (index + 1) & mask) {
        uint32_t slot = slots[index];
        if (!slot) break;
        if ((slot & LENGTH_MASK) != length) continue;
        Py_ssize_t id = (Py_ssize_t)(slot >> LENGTH_BITS) - 1;
        if (id >= known) { /* an id the networks do not name: not this table's networks */
            torn = 1;
            break;
        }
        if (nets[id] == network) {
            found = (long)id;
            break;
        }
    }
    PyBuffer_Release(&networks);
    PyBuffer_Release(&t.slots);
    if (torn) {
        PyErr_SetString(PyExc_ValueError, "a slot names an id past the networks");
        return NULL;
    }
    return PyLong_FromLong(found);
}

static PyObject *place(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "place(table, network, length, id)");
        return NULL;
    }
    uint32_t network, length;
    if (prefix_args(args[1], args[2], &network, &length) < 0) return NULL;
    long value = PyLong_AsLong(args[3]);
    if (value == -1 && PyErr_Occurred()) return NULL;
    if (value < 0 || value > (long)((1u << (32 - LENGTH_BITS)) - 2)) {
        PyErr_SetString(PyExc_OverflowError, "id must fit 26 bits (below 2**26 - 1)");
        return NULL;
    }
    Table t;
    if (open_table(args[0], &t, 1) < 0) return NULL;
    uint32_t *slots = t.slots.buf;
    Py_ssize_t mask = t.size - 1, index = home(network, length, t.shift), tries = 0;
    while (slots[index] && tries++ < t.size) index = (index + 1) & mask;
    int full = slots[index] != 0;
    if (!full) slots[index] = ((uint32_t)(value + 1) << LENGTH_BITS) | length;
    PyBuffer_Release(&t.slots);
    if (full) {
        PyErr_SetString(PyExc_ValueError, "KeyIds table is full");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"probe", (PyCFunction)(void (*)(void))probe, METH_FASTCALL,
     "probe(table, networks, network, length): the id stored for the prefix, -1 if none."},
    {"place", (PyCFunction)(void (*)(void))place, METH_FASTCALL,
     "place(table, network, length, id): store a prefix not in the table yet in its first free slot."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_keymap_fast", "KeyIds probes in C (see collector/rib/keymap.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__keymap_fast(void) {
    PyObject *module = PyModule_Create(&module_def);
    /* keymap.py uses these probes only for the slot layout it writes (a stale build: the fallback) */
    if (module && PyModule_AddIntConstant(module, "SLOT_LAYOUT", 2) < 0) Py_CLEAR(module);
    return module;
}
