/* Calling the attribute classes without CPython's generic machinery.
 *
 * Calling a type goes through type.__call__: an argument tuple, tp_new, then
 * tp_init parsing that tuple again; about 60 ns of a 90 ns Username("...").
 * A type may instead carry its own vectorcall (tp_vectorcall, CPython >= 3.9;
 * never inherited, so a Python subclass is called the generic way), which the
 * attribute modules set for the classes whose constructor they can run in C.
 * Those functions fall back to ice_type_call, exactly what type.__call__
 * does, for anything they do not handle (keywords, a wrong argument count).
 */
#ifndef ICE_FASTCALL_H
#define ICE_FASTCALL_H

#include <Python.h>

static inline void ice_set_vectorcall(PyObject *type, void *fn)
{
    ((PyTypeObject *)type)->tp_vectorcall = (vectorcallfunc)fn;
}

static inline int ice_has_vectorcall(PyObject *type)
{
    return ((PyTypeObject *)type)->tp_vectorcall != NULL;
}

static inline PyObject *ice_type_call(PyObject *type, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *tuple = PyTuple_New(nargs);
    PyObject *kwargs = NULL;
    PyObject *result = NULL;
    Py_ssize_t i;
    if (tuple == NULL)
        return NULL;
    for (i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(tuple, i, args[i]);
    }
    if (nkw) {
        kwargs = PyDict_New();
        if (kwargs == NULL)
            goto done;
        for (i = 0; i < nkw; i++)
            if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0)
                goto done;
    }
    result = PyType_Type.tp_call(type, tuple, kwargs);
done:
    Py_DECREF(tuple);
    Py_XDECREF(kwargs);
    return result;
}

/* A slot in a table of 2**bits entries for a pointer, or a pair of them.
 * Objects of one kind sit at regular strides (the attribute classes 512 bytes
 * apart), so their low bits say little: multiply by 2**64 / phi and keep the
 * top bits (Fibonacci hashing), which every bit of the pointer reaches. */
static inline size_t ice_pointer_slot(const void *a, const void *b, int bits)
{
    uint64_t h = (uint64_t)(uintptr_t)a ^ ((uint64_t)(uintptr_t)b << 17);
    return (size_t)((h * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

/* Put name = value in a type's own dictionary: for static (C-defined) types,
 * whose attributes Python code may not set. */
static inline int ice_type_set(PyObject *type, PyObject *name, PyObject *value)
{
    PyTypeObject *t = (PyTypeObject *)type;
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *dict = PyType_GetDict(t);
    int rc = dict == NULL ? -1 : PyDict_SetItem(dict, name, value);
    Py_XDECREF(dict);
#else
    int rc = PyDict_SetItem(t->tp_dict, name, value);
#endif
    if (rc < 0)
        return -1;
    PyType_Modified(t);
    return 0;
}

/* A read-only member over an object field of an instance: CPython (3.11+)
 * reads one in place in its interpreter loop (LOAD_ATTR_SLOT), where a
 * property goes through the generic getattr and a call: ~1 ns a read against
 * ~18. The field must never be NULL for a read to succeed; def is kept by the
 * caller for as long as the type lives (static storage). */
#if PY_VERSION_HEX >= 0x030C0000
#  define ICE_MEMBER_OBJECT Py_T_OBJECT_EX
#  define ICE_MEMBER_READONLY Py_READONLY
#else
#  include <structmember.h>
#  define ICE_MEMBER_OBJECT T_OBJECT_EX
#  define ICE_MEMBER_READONLY READONLY
#endif

/* Set a descriptor just made (a new reference, or NULL after a failure) as
 * the class attribute name. */
static inline int ice_type_set_descriptor(PyObject *type, const char *name, PyObject *descr)
{
    PyObject *key;
    int rc;
    if (descr == NULL)
        return -1;
    key = PyUnicode_InternFromString(name);
    rc = key == NULL ? -1 : ice_type_set(type, key, descr);
    Py_XDECREF(key);
    Py_DECREF(descr);
    return rc;
}

static inline int ice_type_set_member(PyObject *type, PyMemberDef *def, const char *name,
                                      Py_ssize_t offset, const char *doc)
{
    def->name = name;
    def->type = ICE_MEMBER_OBJECT;
    def->offset = offset;
    def->flags = ICE_MEMBER_READONLY;
    def->doc = doc;
    return ice_type_set_descriptor(type, name, PyDescr_NewMember((PyTypeObject *)type, def));
}

/* A static type's own memory management (tp_alloc, tp_free): set after
 * PyType_Ready, read by its tp_new and tp_dealloc on every object. */
static inline void ice_set_allocator(PyObject *type, void *alloc, void *free)
{
    ((PyTypeObject *)type)->tp_alloc = (allocfunc)alloc;
    ((PyTypeObject *)type)->tp_free = (freefunc)free;
}

static inline void ice_set_dealloc(PyObject *type, void *dealloc)
{
    ((PyTypeObject *)type)->tp_dealloc = (destructor)dealloc;
}

/* Integer class attributes (TYPE, MAX_BYTES, SIZE) read on every add_to and
 * get_from: a direct-mapped cache by (type, name), valid while the type's
 * version tag is the one it was read under (CPython gives a type a new tag
 * whenever its attributes change, and never reuses one). */
typedef struct {
    PyTypeObject *type;
    PyObject *name;
    unsigned int version;
    Py_ssize_t value;
} ice_class_int_entry;

#define ICE_CLASS_INT_BITS 8
static ice_class_int_entry ice_class_ints[1 << ICE_CLASS_INT_BITS];

static inline ice_class_int_entry *ice_class_int_slot(PyTypeObject *type, PyObject *name)
{
    return &ice_class_ints[ice_pointer_slot(type, name, ICE_CLASS_INT_BITS)];
}

static inline int ice_class_int_cached(PyTypeObject *type, PyObject *name, Py_ssize_t *value)
{
    ice_class_int_entry *e = ice_class_int_slot(type, name);
    if (e->type == type && e->name == name && e->version != 0
            && e->version == type->tp_version_tag) {
        *value = e->value;
        return 1;
    }
    return 0;
}

static inline void ice_class_int_store(PyTypeObject *type, PyObject *name, Py_ssize_t value)
{
    ice_class_int_entry *e;
    if (!PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG) || type->tp_version_tag == 0)
        return;
    e = ice_class_int_slot(type, name);
    e->type = type;
    e->name = name;  /* the callers' interned constants, alive as long as the module */
    e->version = type->tp_version_tag;
    e->value = value;
}

/* Attribute instances are immutable values. A class called again with the very
 * same value object (the session's username str, its key bytes) gets the
 * instance it made last time: one look-up instead of an allocation, an init
 * and a deallocation per message. Keyed by (class, value) pointers; the table
 * holds a reference to both, so a pointer cannot be reused while it is in. */
typedef struct {
    PyObject *type;
    PyObject *value;
    PyObject *instance;
} ice_made_entry;

#define ICE_MADE_BITS 7
static ice_made_entry ice_made[1 << ICE_MADE_BITS];

static inline ice_made_entry *ice_made_slot(PyObject *type, PyObject *value)
{
    return &ice_made[ice_pointer_slot(type, value, ICE_MADE_BITS)];
}

static inline PyObject *ice_made_find(PyObject *type, PyObject *value)
{
    ice_made_entry *e = ice_made_slot(type, value);
    if (e->type == type && e->value == value) {
        Py_INCREF(e->instance);
        return e->instance;
    }
    return NULL;
}

static inline void ice_made_keep(PyObject *type, PyObject *value, PyObject *instance)
{
    ice_made_entry *e = ice_made_slot(type, value);
    PyObject *old_value = e->value, *old_instance = e->instance;
    Py_INCREF(value);
    Py_INCREF(instance);
    e->type = type;
    e->value = value;
    e->instance = instance;
    Py_XDECREF(old_value);
    Py_XDECREF(old_instance);
}

/* The read side of the same idea: get_from on a message that carries the same
 * value as the last one read for that class (a peer's USERNAME, a server's
 * REALM and NONCE, the client's own mapped address) returns the instance it
 * made then, found by class; the caller compares the wire bytes. Only static
 * (C-defined) classes are kept: their instances have no __dict__, so nothing
 * can be set on one that the next reader would see. */
#define ICE_READ_BITS 7
static PyObject *ice_read_instances[1 << ICE_READ_BITS];

static inline PyObject **ice_read_slot(PyObject *type)
{
    return &ice_read_instances[ice_pointer_slot(type, NULL, ICE_READ_BITS)];
}

/* The last instance read for type (borrowed), or NULL. */
static inline PyObject *ice_read_find(PyObject *type)
{
    PyObject *kept = *ice_read_slot(type);
    return kept != NULL && (PyObject *)Py_TYPE(kept) == type ? kept : NULL;
}

static inline void ice_read_keep(PyObject *instance)
{
    PyObject **slot;
    PyObject *old;
    if (PyType_HasFeature(Py_TYPE(instance), Py_TPFLAGS_HEAPTYPE))
        return;
    slot = ice_read_slot((PyObject *)Py_TYPE(instance));
    old = *slot;
    Py_INCREF(instance);
    *slot = instance;
    Py_XDECREF(old);
}

/* A constructor taking one positional argument, all in C: make the instance,
 * then run the attribute module's init function on it. An init that refuses
 * the value returns -1 with the error set and leaves no traceback entry of its
 * own (see _refuse in _attrs_base.pyx), so a hostile oversized value costs
 * about what CPython's cheapest raise costs. */
typedef int (*ice_init_fn)(PyObject *self, PyObject *value);

#define ICE_ONE_ARG_CONSTRUCTOR(NAME, KEEPS)                                            \
    static ice_init_fn NAME##_init;                                                     \
    static inline PyObject *NAME##_vectorcall(PyObject *cls, PyObject *const *args,           \
                                       size_t nargsf, PyObject *kwnames)                \
    {                                                                                   \
        PyObject *self;                                                                 \
        if (kwnames != NULL || PyVectorcall_NARGS(nargsf) != 1)                         \
            return ice_type_call(cls, args, nargsf, kwnames);                           \
        if (KEEPS(args[0]) && (self = ice_made_find(cls, args[0])) != NULL)             \
            return self;                                                                \
        self = ((PyTypeObject *)cls)->tp_new((PyTypeObject *)cls, ice_no_args(), NULL); \
        if (self == NULL)                                                               \
            return NULL;                                                                \
        if (NAME##_init(self, args[0]) < 0) {                                           \
            Py_DECREF(self);                                                            \
            return NULL;                                                                \
        }                                                                               \
        if (KEEPS(args[0]))                                                             \
            ice_made_keep(cls, args[0], self);                                          \
        return self;                                                                    \
    }                                                                                   \
    static inline void *NAME##_install(void *init)                                           \
    {                                                                                   \
        NAME##_init = (ice_init_fn)init;                                                \
        return (void *)NAME##_vectorcall;                                               \
    }

static PyObject *ice_no_args_tuple;

static inline PyObject *ice_no_args(void)
{
    /* tp_new of the attribute classes ignores its arguments: one shared empty tuple */
    return ice_no_args_tuple;
}

/* Which values an instance may be kept for: immutable ones (a bytearray can
 * change under the instance made from it). Payloads (DATA) are not kept. */
#define ICE_KEEPS_TEXT(value) (PyUnicode_CheckExact(value) || PyBytes_CheckExact(value))
#define ICE_KEEPS_NOTHING(value) 0
/* An exact int (a session's priority, tie-breaker); an IntEnum member is made afresh. */
#define ICE_KEEPS_INT(value) PyLong_CheckExact(value)

ICE_ONE_ARG_CONSTRUCTOR(ice_text, ICE_KEEPS_TEXT)
ICE_ONE_ARG_CONSTRUCTOR(ice_bytes, ICE_KEEPS_NOTHING)
ICE_ONE_ARG_CONSTRUCTOR(ice_uint32, ICE_KEEPS_INT)
ICE_ONE_ARG_CONSTRUCTOR(ice_uint64, ICE_KEEPS_INT)

/* A function object for a C function taking (module, args, nargs, kwnames):
 * METH_FASTCALL | METH_KEYWORDS, so a call with *args and keywords builds
 * neither an argument tuple nor a keyword dict. Not a method descriptor, so
 * placed in a class's dictionary it is read as the plain function it is (as
 * a staticmethod's function would be, minus the descriptor call). The
 * definitions live as long as the process; ICE_FASTCALL_FUNCTIONS bounds them. */
#define ICE_FASTCALL_FUNCTIONS 4
static PyMethodDef ice_fastcall_defs[ICE_FASTCALL_FUNCTIONS];
static int ice_fastcall_count;

static inline PyObject *ice_fastcall_function(const char *name, void *fn, const char *doc)
{
    PyMethodDef *def;
    if (ice_fastcall_count == ICE_FASTCALL_FUNCTIONS) {
        PyErr_SetString(PyExc_RuntimeError, "ice_fastcall_function: no definition left");
        return NULL;
    }
    def = &ice_fastcall_defs[ice_fastcall_count++];
    def->ml_name = name;
    def->ml_meth = (PyCFunction)(void (*)(void))fn;
    def->ml_flags = METH_FASTCALL | METH_KEYWORDS;
    def->ml_doc = doc;
    return PyCFunction_NewEx(def, NULL, NULL);
}


/* A C method of a class (METH_O or METH_NOARGS), set in its dictionary as a
 * method descriptor, as a `def` would be. For the methods whose refusals a
 * server meets at line rate (the integrity and fingerprint checks): the C
 * function returns NULL with the error set, and no Cython traceback entry is
 * made on the way out (see _refusal.h). ICE_METHODS bounds the definitions. */
#define ICE_METHODS 8
static PyMethodDef ice_method_defs[ICE_METHODS];
static int ice_method_count;

static inline int ice_type_set_method(PyObject *type, const char *name, void *fn, int flags,
                                      const char *doc)
{
    PyMethodDef *def;
    if (ice_method_count == ICE_METHODS) {
        PyErr_SetString(PyExc_RuntimeError, "ice_type_set_method: no definition left");
        return -1;
    }
    def = &ice_method_defs[ice_method_count++];
    def->ml_name = name;
    def->ml_meth = (PyCFunction)(void (*)(void))fn;
    def->ml_flags = flags;
    def->ml_doc = doc;
    return ice_type_set_descriptor(type, name, PyDescr_NewMethod((PyTypeObject *)type, def));
}

#endif
