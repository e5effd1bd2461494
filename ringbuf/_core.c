/* The ring buffer's hot path in C.
 *
 * CPython has no atomics and a record store written in Python costs ~1 us on the
 * target machine (two-core 2 GHz VM), so the per-record work lives here:
 *
 *  - SharedWords: acquire/release/seq_cst access to u64 words of a buffer
 *    (the `atomics` package costs ~18 us per operation);
 *  - HdrSeries: count a value in a shared-memory latency histogram;
 *  - LogAppender: append a record to a shared-memory log (the kernel's outbox);
 *  - InboxCore/Delivery: dedupe, mark and trace each message handed to an actor;
 *  - WriterCore: append records and publish the write cursor;
 *  - ReaderCore: hand published records to Python handlers, dispatched by type id,
 *    and commit the read cursor after each batch or when the caller says so.
 *
 * Attach, validation, ownership and policies stay in Python (ring.py). The byte
 * layout constants are defined here once and exported to Python (layout.py).
 * Every index is masked into the data area and every length and cursor is checked
 * against the bounds the producer keeps, so a corrupted ring raises RingCorrupted
 * (naming the ring) instead of touching memory outside the mapping, looping
 * forever with the GIL held, or handing out stale records of an earlier lap.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The first members of every small type over a shared buffer (SharedWords, HdrSeries,
 * LogAppender): they take, check and give the buffer back the same way. */
typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view;
} BufferHolder;

static void
drop_view(Py_buffer *view, int *has_view)
{
    if (*has_view) {
        PyBuffer_Release(view);
        *has_view = 0;
    }
}

/* Hold obj's writable, C-contiguous buffer (any held before is given back first); it
 * must have `need` bytes from `offset`, 8-byte aligned there. */
static int
hold_buffer(BufferHolder *self, PyObject *obj, Py_ssize_t offset, Py_ssize_t need)
{
    drop_view(&self->view, &self->has_view);
    if (PyObject_GetBuffer(obj, &self->view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    self->has_view = 1;
    Py_ssize_t length = self->view.len;
    if (offset < 0 || need < 0 || offset + need > length ||
        ((uintptr_t)self->view.buf + (uintptr_t)offset) % 8 != 0) {
        drop_view(&self->view, &self->has_view);
        PyErr_Format(PyExc_ValueError,
                     "need %zd bytes, 8-byte aligned, at offset %zd of a buffer of %zd bytes",
                     need, offset, length);
        return -1;
    }
    return 0;
}

static int
holder_usable(BufferHolder *self)
{
    if (self->has_view)
        return 1;
    PyErr_Format(PyExc_ValueError, "%s is released", Py_TYPE(self)->tp_name);
    return 0;
}

static void
holder_dealloc(BufferHolder *self)
{
    drop_view(&self->view, &self->has_view);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
holder_release(BufferHolder *self, PyObject *Py_UNUSED(ignored))
{
    drop_view(&self->view, &self->has_view);
    Py_RETURN_NONE;
}

typedef BufferHolder SharedWords;

static int
shared_words_init(SharedWords *self, PyObject *args, PyObject *kwds)
{
    PyObject *obj;
    static char *kwlist[] = {"buffer", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O", kwlist, &obj))
        return -1;
    return hold_buffer(self, obj, 0, 0);
}

static uint64_t *
word_at(SharedWords *self, PyObject *offset_obj)
{
    if (!holder_usable(self))
        return NULL;
    Py_ssize_t offset = PyLong_AsSsize_t(offset_obj);
    if (offset == -1 && PyErr_Occurred())
        return NULL;
    if (offset < 0 || offset % 8 != 0 || offset + 8 > self->view.len) {
        PyErr_Format(PyExc_IndexError,
                     "offset %zd is not an aligned 8-byte word inside %zd bytes",
                     offset, self->view.len);
        return NULL;
    }
    return (uint64_t *)((char *)self->view.buf + offset);
}

static int
parse_u64(PyObject *obj, uint64_t *out)
{
    unsigned long long v = PyLong_AsUnsignedLongLong(obj);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *out = (uint64_t)v;
    return 0;
}

#define ARGC_CHECK(name, n)                                                    \
    if (nargs != (n)) {                                                        \
        PyErr_Format(PyExc_TypeError, name "() takes %d arguments", (n));      \
        return NULL;                                                           \
    }

static PyObject *
sw_load_acquire(SharedWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    ARGC_CHECK("load_acquire", 1);
    uint64_t *p = word_at(self, args[0]);
    if (p == NULL)
        return NULL;
    return PyLong_FromUnsignedLongLong(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

static PyObject *
sw_load_seq_cst(SharedWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    ARGC_CHECK("load_seq_cst", 1);
    uint64_t *p = word_at(self, args[0]);
    if (p == NULL)
        return NULL;
    return PyLong_FromUnsignedLongLong(__atomic_load_n(p, __ATOMIC_SEQ_CST));
}

static PyObject *
sw_store_release(SharedWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    ARGC_CHECK("store_release", 2);
    uint64_t *p = word_at(self, args[0]);
    uint64_t v;
    if (p == NULL || parse_u64(args[1], &v) < 0)
        return NULL;
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

static PyObject *
sw_store_seq_cst(SharedWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    ARGC_CHECK("store_seq_cst", 2);
    uint64_t *p = word_at(self, args[0]);
    uint64_t v;
    if (p == NULL || parse_u64(args[1], &v) < 0)
        return NULL;
    __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

static PyObject *
sw_compare_exchange(SharedWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    ARGC_CHECK("compare_exchange", 3);
    uint64_t *p = word_at(self, args[0]);
    uint64_t expected, desired;
    if (p == NULL || parse_u64(args[1], &expected) < 0 || parse_u64(args[2], &desired) < 0)
        return NULL;
    int ok = __atomic_compare_exchange_n(p, &expected, desired, 0,
                                         __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return PyBool_FromLong(ok);
}

static PyObject *
sw_fetch_add(SharedWords *self, PyObject *const *args, Py_ssize_t nargs)
{
    ARGC_CHECK("fetch_add", 2);
    uint64_t *p = word_at(self, args[0]);
    uint64_t v;
    if (p == NULL || parse_u64(args[1], &v) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(__atomic_fetch_add(p, v, __ATOMIC_SEQ_CST));
}

static PyMethodDef shared_words_methods[] = {
    {"load_acquire", (PyCFunction)(void (*)(void))sw_load_acquire, METH_FASTCALL,
     "load_acquire(offset) -> int: acquire load of the u64 at offset."},
    {"load_seq_cst", (PyCFunction)(void (*)(void))sw_load_seq_cst, METH_FASTCALL,
     "load_seq_cst(offset) -> int: sequentially consistent load."},
    {"store_release", (PyCFunction)(void (*)(void))sw_store_release, METH_FASTCALL,
     "store_release(offset, value): release store of a u64."},
    {"store_seq_cst", (PyCFunction)(void (*)(void))sw_store_seq_cst, METH_FASTCALL,
     "store_seq_cst(offset, value): sequentially consistent store (full fence)."},
    {"compare_exchange", (PyCFunction)(void (*)(void))sw_compare_exchange, METH_FASTCALL,
     "compare_exchange(offset, expected, desired) -> bool."},
    {"fetch_add", (PyCFunction)(void (*)(void))sw_fetch_add, METH_FASTCALL,
     "fetch_add(offset, value) -> int: atomic add, returns the previous value."},
    {"release", (PyCFunction)holder_release, METH_NOARGS,
     "release(): drop the buffer so the mapping can be closed."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SharedWordsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ringbuf._core.SharedWords",
    .tp_basicsize = sizeof(SharedWords),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Atomic u64 words over a writable, 8-byte aligned buffer.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)shared_words_init,
    .tp_dealloc = (destructor)holder_dealloc,
    .tp_methods = shared_words_methods,
};

/* ------------------------------------------------------------ histograms -- */

/* One series of a latency histogram (kernel/latency.py owns the layout: u64 count,
 * u64 max, then `buckets` u64 counts). Buckets are log-linear: values below 32 exact,
 * above that 16 buckets per power of two; the last bucket takes everything larger.
 * Recorded on every message of a traced node, so in C: ~40 instructions, where the
 * same arithmetic on a memoryview in CPython costs ~4,500. One writer per series. */

#define HDR_SUB_BITS 5

static inline Py_ssize_t
hdr_bucket_index(long long value, Py_ssize_t buckets)
{
    if (value < 32)
        return value > 0 ? (Py_ssize_t)value : 0;
    int shift = (64 - __builtin_clzll((unsigned long long)value)) - HDR_SUB_BITS;
    Py_ssize_t index = ((Py_ssize_t)shift << 4) + (Py_ssize_t)((unsigned long long)value >> shift);
    return index < buckets ? index : buckets - 1;
}

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view;
    uint64_t *words;  /* count, max, buckets... */
    Py_ssize_t buckets;
} HdrSeries;

static int
hdr_series_init(HdrSeries *self, PyObject *args, PyObject *kwds)
{
    PyObject *obj;
    Py_ssize_t offset, buckets;
    static char *kwlist[] = {"buffer", "offset", "buckets", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Onn", kwlist, &obj, &offset, &buckets))
        return -1;
    if (buckets < 1) {
        PyErr_SetString(PyExc_ValueError, "a series needs at least one bucket");
        return -1;
    }
    if (hold_buffer((BufferHolder *)self, obj, offset, 8 * (2 + buckets)) < 0)
        return -1;
    self->words = (uint64_t *)((char *)self->view.buf + offset);
    self->buckets = buckets;
    return 0;
}

/* Single writer: plain read-modify-write, stores made visible to readers in order.
 * A released or absent series records nothing. */
static inline void
hdr_record(HdrSeries *series, long long value)
{
    if (series == NULL || !series->has_view)
        return;
    uint64_t *words = series->words;
    uint64_t *bucket = &words[2 + hdr_bucket_index(value, series->buckets)];
    __atomic_store_n(bucket, *bucket + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&words[0], words[0] + 1, __ATOMIC_RELEASE);
    if (value > 0 && (uint64_t)value > words[1])
        __atomic_store_n(&words[1], (uint64_t)value, __ATOMIC_RELAXED);
}

static PyObject *
hdr_series_record(HdrSeries *self, PyObject *value_obj)
{
    if (!holder_usable((BufferHolder *)self))
        return NULL;
    long long value = PyLong_AsLongLong(value_obj);
    if (value == -1 && PyErr_Occurred())
        return NULL;
    hdr_record(self, value);
    Py_RETURN_NONE;
}

static PyMethodDef hdr_series_methods[] = {
    {"record", (PyCFunction)hdr_series_record, METH_O,
     "record(value_ns): count one value (negative counts as 0)."},
    {"release", (PyCFunction)holder_release, METH_NOARGS,
     "release(): drop the buffer so the mapping can be closed."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject HdrSeriesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ringbuf._core.HdrSeries",
    .tp_basicsize = sizeof(HdrSeries),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "HdrSeries(buffer, offset, buckets): the writer of one latency histogram series.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)hdr_series_init,
    .tp_dealloc = (destructor)holder_dealloc,
    .tp_methods = hdr_series_methods,
};

static PyObject *
hdr_bucket(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    ARGC_CHECK("hdr_bucket", 2);
    long long value = PyLong_AsLongLong(args[0]);
    if (value == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t buckets = PyLong_AsSsize_t(args[1]);
    if (buckets == -1 && PyErr_Occurred())
        return NULL;
    if (buckets < 1) {
        PyErr_SetString(PyExc_ValueError, "buckets must be >= 1");
        return NULL;
    }
    return PyLong_FromSsize_t(hdr_bucket_index(value, buckets));
}

/* ------------------------------------------------------------------- log -- */

/* An append-only log of records in a shared buffer: u64 byte length at offset 0
 * (stored last, with release semantics), records from offset 64, each
 * [u64 seq][u16 stream][u16 type id][u32 length][payload] padded to 8 bytes. The
 * kernel's outbox (kernel/outbox.py, which reads it back) appends to it on every
 * publish, so the append is here: ~100 instructions, not ~5,000 in CPython. */

#define LOG_DATA 64
#define LOG_ENTRY 16

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view;
    uint64_t length;
} LogAppender;

static int
log_appender_init(LogAppender *self, PyObject *args, PyObject *kwds)
{
    PyObject *obj;
    static char *kwlist[] = {"buffer", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O", kwlist, &obj))
        return -1;
    if (hold_buffer((BufferHolder *)self, obj, 0, LOG_DATA) < 0)
        return -1;
    uint64_t length = __atomic_load_n((uint64_t *)self->view.buf, __ATOMIC_ACQUIRE);
    if (length > (uint64_t)(self->view.len - LOG_DATA)) {
        drop_view(&self->view, &self->has_view);
        PyErr_Format(PyExc_ValueError, "log length %llu exceeds its buffer",
                     (unsigned long long)length);
        return -1;
    }
    self->length = length;
    return 0;
}

static PyObject *
log_appender_append(LogAppender *self, PyObject *const *args, Py_ssize_t nargs)
{
    ARGC_CHECK("append", 4);
    if (!holder_usable((BufferHolder *)self))
        return NULL;
    unsigned long stream = PyLong_AsUnsignedLong(args[0]);
    unsigned long long seq = PyLong_AsUnsignedLongLong(args[1]);
    unsigned long type_id = PyLong_AsUnsignedLong(args[2]);
    if (PyErr_Occurred())
        return NULL;
    if (stream > 0xFFFF || type_id > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "stream and type id must fit 16 bits");
        return NULL;
    }
    Py_buffer payload;
    if (PyObject_GetBuffer(args[3], &payload, PyBUF_SIMPLE) < 0)
        return NULL;
    uint64_t start = self->length;
    uint64_t end = (start + LOG_ENTRY + (uint64_t)payload.len + 7) & ~(uint64_t)7;
    if (payload.len > 0xFFFFFFFFLL || end > (uint64_t)(self->view.len - LOG_DATA)) {
        PyBuffer_Release(&payload);
        Py_RETURN_FALSE;  /* full: the caller commits (clearing it) or gives up */
    }
    char *at = (char *)self->view.buf + LOG_DATA + start;
    uint64_t seq64 = seq;
    uint16_t stream16 = (uint16_t)stream, type16 = (uint16_t)type_id;
    uint32_t length32 = (uint32_t)payload.len;
    memcpy(at, &seq64, 8);
    memcpy(at + 8, &stream16, 2);
    memcpy(at + 10, &type16, 2);
    memcpy(at + 12, &length32, 4);
    memcpy(at + LOG_ENTRY, payload.buf, payload.len);
    PyBuffer_Release(&payload);
    self->length = end;
    __atomic_store_n((uint64_t *)self->view.buf, end, __ATOMIC_RELEASE);
    Py_RETURN_TRUE;
}

static PyObject *
log_appender_clear(LogAppender *self, PyObject *Py_UNUSED(ignored))
{
    if (!holder_usable((BufferHolder *)self))
        return NULL;
    self->length = 0;
    __atomic_store_n((uint64_t *)self->view.buf, 0, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

static PyObject *
log_appender_get_length(LogAppender *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->length);
}

static PyGetSetDef log_appender_getset[] = {
    {"length", (getter)log_appender_get_length, NULL, "bytes of records appended", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef log_appender_methods[] = {
    {"append", (PyCFunction)(void (*)(void))log_appender_append, METH_FASTCALL,
     "append(stream, seq, type_id, payload) -> bool: False (nothing written) when full."},
    {"clear", (PyCFunction)log_appender_clear, METH_NOARGS, "clear(): empty the log."},
    {"release", (PyCFunction)holder_release, METH_NOARGS,
     "release(): drop the buffer so the mapping can be closed."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LogAppenderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ringbuf._core.LogAppender",
    .tp_basicsize = sizeof(LogAppender),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "LogAppender(buffer): append records to a log in a shared buffer.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)log_appender_init,
    .tp_dealloc = (destructor)holder_dealloc,
    .tp_methods = log_appender_methods,
    .tp_getset = log_appender_getset,
};

/* ----------------------------------------------------------------- inbox -- */

/* The consumer side of one input, per message: drop a redelivery by its `seq`, count
 * gaps, mark the message in flight and done in the actor's durable words around its
 * handler, trace the hop and the handler's run. kernel/inbox.py documents the
 * contract and builds these; they are here because they run on every message (a
 * Python closure doing the same costs ~5,000 instructions per message).
 *
 * Instant: a shared ns timestamp (the node's "handler running since"). InboxCore: the
 * input's counters. InboxCore.entry(handler, ignored) -> Delivery, the callable that
 * the ring's drain loop calls with each decoded message of one type. */

static uint64_t monotonic_ns(void);

typedef struct {
    PyObject_HEAD
    long long ns;
} Instant;

static PyMemberDef instant_members[] = {
    {"ns", T_LONGLONG, offsetof(Instant, ns), 0, "the time, ns (0: none)"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject InstantType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ringbuf._core.Instant",
    .tp_basicsize = sizeof(Instant),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Instant(): one shared ns timestamp, `ns` (0 at first).",
    .tp_new = PyType_GenericNew,
    .tp_members = instant_members,
};

typedef struct {
    PyObject_HEAD
    unsigned long long seq, duplicates, gaps, unhandled, poison;
    SharedWords *marks;          /* the actor's durable words (owned reference) */
    uint64_t *in_flight, *done;  /* inside marks' buffer */
    HdrSeries *hop, *handle;     /* NULL: not traced */
    Instant *handling;
    PyObject *quarantine;        /* quarantine(msg): the poison message, instead of handling */
    PyObject *after_handler;     /* after_handler(): fault injection, or NULL */
    PyObject *on_unhandled;      /* on_unhandled(msg): a type nobody handles (logging) */
} InboxCore;

static PyObject *seq_name, *ts_name;

static int
inbox_core_init(InboxCore *self, PyObject *args, PyObject *kwds)
{
    PyObject *marks, *hop = Py_None, *handle = Py_None, *handling = Py_None;
    PyObject *quarantine, *after_handler = Py_None, *on_unhandled;
    Py_ssize_t in_flight, done;
    unsigned long long seq;
    static char *kwlist[] = {"seq", "marks", "in_flight", "done", "quarantine",
                             "on_unhandled", "hop", "handle", "handling", "after_handler",
                             NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KO!nnOO|OOOO", kwlist, &seq,
                                     &SharedWordsType, &marks, &in_flight, &done,
                                     &quarantine, &on_unhandled, &hop, &handle, &handling,
                                     &after_handler))
        return -1;
    SharedWords *words = (SharedWords *)marks;
    if (!words->has_view || in_flight < 0 || done < 0 || in_flight % 8 || done % 8 ||
        in_flight + 8 > words->view.len || done + 8 > words->view.len) {
        PyErr_SetString(PyExc_ValueError, "the mark offsets must be aligned words of marks");
        return -1;
    }
    int traced = hop != Py_None;
    if (traced && (!PyObject_TypeCheck(hop, &HdrSeriesType) ||
                   !PyObject_TypeCheck(handle, &HdrSeriesType) ||
                   !PyObject_TypeCheck(handling, &InstantType))) {
        PyErr_SetString(PyExc_TypeError, "hop and handle are HdrSeries, handling an Instant");
        return -1;
    }
    self->seq = seq;
    Py_INCREF(marks);
    Py_XSETREF(self->marks, words);
    self->in_flight = (uint64_t *)((char *)words->view.buf + in_flight);
    self->done = (uint64_t *)((char *)words->view.buf + done);
    if (traced) {
        Py_INCREF(hop);
        Py_INCREF(handle);
        Py_INCREF(handling);
    }
    Py_XSETREF(self->hop, traced ? (HdrSeries *)hop : NULL);
    Py_XSETREF(self->handle, traced ? (HdrSeries *)handle : NULL);
    Py_XSETREF(self->handling, traced ? (Instant *)handling : NULL);
    Py_INCREF(quarantine);
    Py_XSETREF(self->quarantine, quarantine);
    Py_INCREF(on_unhandled);
    Py_XSETREF(self->on_unhandled, on_unhandled);
    if (after_handler == Py_None)
        Py_CLEAR(self->after_handler);
    else {
        Py_INCREF(after_handler);
        Py_XSETREF(self->after_handler, after_handler);
    }
    return 0;
}

static int
inbox_core_traverse(InboxCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->marks);
    Py_VISIT(self->hop);
    Py_VISIT(self->handle);
    Py_VISIT(self->handling);
    Py_VISIT(self->quarantine);
    Py_VISIT(self->after_handler);
    Py_VISIT(self->on_unhandled);
    return 0;
}

static int
inbox_core_clear(InboxCore *self)
{
    Py_CLEAR(self->marks);
    Py_CLEAR(self->hop);
    Py_CLEAR(self->handle);
    Py_CLEAR(self->handling);
    Py_CLEAR(self->quarantine);
    Py_CLEAR(self->after_handler);
    Py_CLEAR(self->on_unhandled);
    return 0;
}

static void
inbox_core_dealloc(InboxCore *self)
{
    PyObject_GC_UnTrack(self);
    inbox_core_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef inbox_core_members[] = {
    {"seq", T_ULONGLONG, offsetof(InboxCore, seq), 0, "the last seq handled (or skipped)"},
    {"duplicates", T_ULONGLONG, offsetof(InboxCore, duplicates), 0, "redeliveries dropped"},
    {"gaps", T_ULONGLONG, offsetof(InboxCore, gaps), 0, "seqs that skipped ahead"},
    {"unhandled", T_ULONGLONG, offsetof(InboxCore, unhandled), 0, "messages nobody handles"},
    {"poison", T_ULONGLONG, offsetof(InboxCore, poison), 0, "a seq to quarantine (0: none)"},
    {NULL, 0, 0, 0, NULL},
};

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    InboxCore *core;
    PyObject *handler;  /* NULL: a type the actor does not handle */
    int ignored;
} Delivery;

static unsigned long long
message_u64(PyObject *msg, PyObject *name, int *error)
{
    PyObject *value = PyObject_GetAttr(msg, name);
    if (value == NULL) {
        *error = 1;
        return 0;
    }
    unsigned long long out = PyLong_AsUnsignedLongLong(value);
    Py_DECREF(value);
    if (out == (unsigned long long)-1 && PyErr_Occurred())
        *error = 1;
    return out;
}

static PyObject *
delivery_call(Delivery *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "a delivery takes one message");
        return NULL;
    }
    PyObject *msg = args[0];
    InboxCore *core = self->core;
    int error = 0;
    long long received = 0;
    if (self->handler != NULL && core->hop != NULL) {
        received = (long long)monotonic_ns();
        long long stamped = (long long)message_u64(msg, ts_name, &error);
        if (error)
            return NULL;
        hdr_record(core->hop, received - stamped);
        core->handling->ns = received;
    }
    unsigned long long seq = message_u64(msg, seq_name, &error);
    if (error)
        return NULL;
    unsigned long long last = core->seq;
    if (seq <= last) {
        core->duplicates++;
        Py_RETURN_NONE;
    }
    if (seq != last + 1 && last)
        core->gaps++;
    if (self->handler == NULL) {
        core->seq = seq;
        if (!self->ignored) {
            core->unhandled++;
            return PyObject_CallOneArg(core->on_unhandled, msg);
        }
        Py_RETURN_NONE;
    }
    if (seq == core->poison) {
        PyObject *result = PyObject_CallOneArg(core->quarantine, msg);
        if (result == NULL)
            return NULL;
        Py_DECREF(result);
        core->seq = seq;
        Py_RETURN_NONE;
    }
    __atomic_store_n(core->in_flight, (uint64_t)seq, __ATOMIC_RELEASE);
    PyObject *result = PyObject_CallOneArg(self->handler, msg);
    if (result == NULL)
        return NULL;
    Py_DECREF(result);
    __atomic_store_n(core->done, (uint64_t)seq, __ATOMIC_RELEASE);
    core->seq = seq;
    if (core->hop != NULL) {
        core->handling->ns = 0;
        hdr_record(core->handle, (long long)monotonic_ns() - received);
    }
    if (core->after_handler != NULL)
        return PyObject_CallNoArgs(core->after_handler);
    Py_RETURN_NONE;
}

static int
delivery_traverse(Delivery *self, visitproc visit, void *arg)
{
    Py_VISIT(self->core);
    Py_VISIT(self->handler);
    return 0;
}

static int
delivery_clear(Delivery *self)
{
    Py_CLEAR(self->core);
    Py_CLEAR(self->handler);
    return 0;
}

static void
delivery_dealloc(Delivery *self)
{
    PyObject_GC_UnTrack(self);
    delivery_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject DeliveryType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ringbuf._core.Delivery",
    .tp_basicsize = sizeof(Delivery),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "One message type's way into an actor (made by InboxCore.entry).",
    .tp_vectorcall_offset = offsetof(Delivery, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)delivery_traverse,
    .tp_clear = (inquiry)delivery_clear,
    .tp_dealloc = (destructor)delivery_dealloc,
};

static PyObject *
inbox_core_entry(InboxCore *self, PyObject *args)
{
    PyObject *handler;
    int ignored = 0;
    if (!PyArg_ParseTuple(args, "O|p", &handler, &ignored))
        return NULL;
    Delivery *entry = PyObject_GC_New(Delivery, &DeliveryType);
    if (entry == NULL)
        return NULL;
    entry->vectorcall = (vectorcallfunc)delivery_call;
    Py_INCREF(self);
    entry->core = self;
    entry->handler = NULL;
    if (handler != Py_None) {
        Py_INCREF(handler);
        entry->handler = handler;
    }
    entry->ignored = ignored;
    PyObject_GC_Track(entry);
    return (PyObject *)entry;
}

static PyMethodDef inbox_core_methods[] = {
    {"entry", (PyCFunction)inbox_core_entry, METH_VARARGS,
     "entry(handler, ignored=False) -> Delivery: the callable for one message type "
     "(handler None: a type the actor does not handle; ignored: do not count it)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject InboxCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ringbuf._core.InboxCore",
    .tp_basicsize = sizeof(InboxCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "InboxCore(seq, marks, in_flight, done, quarantine, on_unhandled, hop=None, "
              "handle=None, handling=None, after_handler=None): one input's per-message work.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)inbox_core_init,
    .tp_traverse = (traverseproc)inbox_core_traverse,
    .tp_clear = (inquiry)inbox_core_clear,
    .tp_dealloc = (destructor)inbox_core_dealloc,
    .tp_members = inbox_core_members,
    .tp_methods = inbox_core_methods,
};

/* ---------------------------------------------------------------- layout -- */

#define HEADER_SIZE 1024
#define LINE 128
#define WRITE_CURSOR (1 * LINE)
#define READ_CURSOR (2 * LINE)
#define PRODUCER_LINE (3 * LINE)
#define COMMIT_SLOT_0 (PRODUCER_LINE)
#define COMMIT_SLOT_1 (PRODUCER_LINE + 16)
#define DROPPED (PRODUCER_LINE + 32)
#define PRODUCER_PID (PRODUCER_LINE + 40)
#define SLEEP_EPOCH (4 * LINE)
#define CONSUMER_LINE (5 * LINE)
#define CONSUMER_PID (CONSUMER_LINE)
#define CONSUMED (CONSUMER_LINE + 8)
#define RECORD_HEADER 8
#define PADDING_TYPE 0xFFFFu
#define LENGTH_MASK 0xFFFFFFFFull

static PyObject *RingCorrupted;  /* ringbuf.errors.RingCorrupted */
static PyObject *RecordTooLarge; /* ringbuf.errors.RecordTooLarge */
static PyObject *UnknownRecordType; /* ringbuf.errors.UnknownRecordType */
static PyObject *RingFull;       /* ringbuf.errors.RingFull */
static PyObject *RingClosed;     /* ringbuf.errors.RingClosed */
static PyObject *release_name;   /* interned "release" */

#define WORD(base, offset) ((uint64_t *)((char *)(base) + (offset)))

static inline uint64_t
record_size(uint64_t length)
{
    return (length + RECORD_HEADER + 7) & ~(uint64_t)7;
}

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static uint64_t
monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

/* Shared by both cores: hold the whole mapping and check its geometry. */
static int
map_ring(PyObject *obj, Py_buffer *view, unsigned long long capacity)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (capacity < 1024 || (capacity & (capacity - 1)) != 0 ||
        (unsigned long long)view->len != HEADER_SIZE + capacity ||
        ((uintptr_t)view->buf) % 8 != 0) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError,
                     "buffer of %zd bytes is not an aligned ring of capacity %llu",
                     view->len, capacity);
        return -1;
    }
    return 0;
}

/* Raise `exc` with a message that starts with the ring's name ("ring 'x': ..."):
 * a node reads many rings, and whoever reads the log must know which one broke.
 * `name` is NULL only on a core whose __init__ never ran. */
static void
ring_error(PyObject *exc, PyObject *name, const char *format, ...)
{
    va_list vargs;
    va_start(vargs, format);
    PyObject *detail = PyUnicode_FromFormatV(format, vargs);
    va_end(vargs);
    if (detail == NULL)
        return;
    PyObject *message = name == NULL ? Py_NewRef(detail)
                                     : PyUnicode_FromFormat("ring %R: %U", name, detail);
    Py_DECREF(detail);
    if (message == NULL)
        return;
    PyErr_SetObject(exc, message);
    Py_DECREF(message);
}

/* The optional `name` argument of both cores: the ring's name, or "?" if not given. */
static int
set_ring_name(PyObject **slot, PyObject *name)
{
    if (name == NULL) {
        name = PyUnicode_FromString("?");
        if (name == NULL)
            return -1;
    } else {
        Py_INCREF(name);
    }
    Py_XSETREF(*slot, name);
    return 0;
}

/* ------------------------------------------------------------ WriterCore -- */

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view;
    char *base;
    char *data;
    uint64_t capacity;
    uint64_t mask;
    uint64_t max_payload;
    uint64_t pos;          /* end of the last record written */
    uint64_t published;    /* write cursor as last published */
    uint64_t cached_read;  /* consumer's read cursor as last seen */
    uint64_t count;        /* records written, published or not */
    uint64_t dropped;
    uint64_t signaled_epoch;
    int next_slot;
    int fence;             /* seq_cst publish + doorbell (rings that can park) */
    int block_on_full;     /* full policy: 1 = block (backpressure), 0 = drop */
    int blocked;           /* a write is waiting with the GIL released */
    int doorbell_fd;
    PyObject *name;        /* the ring's name, for error messages */
} WriterCore;

static int
writer_init(WriterCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"buffer", "capacity", "pos", "count", "next_slot",
                             "dropped", "doorbell_fd", "block_on_full", "name", NULL};
    PyObject *obj, *name = NULL;
    unsigned long long capacity, pos, count, dropped;
    int next_slot, doorbell_fd, block_on_full;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OKKKiKip|U", kwlist, &obj, &capacity, &pos,
                                     &count, &next_slot, &dropped, &doorbell_fd,
                                     &block_on_full, &name))
        return -1;
    if (self->has_view) {
        PyErr_SetString(PyExc_RuntimeError, "WriterCore is already initialised");
        return -1;
    }
    if (set_ring_name(&self->name, name) < 0)
        return -1;
    if (pos & 7) {
        ring_error(RingCorrupted, self->name, "write cursor %llu is not 8-byte aligned", pos);
        return -1;
    }
    if (map_ring(obj, &self->view, capacity) < 0)
        return -1;
    self->has_view = 1;
    self->base = self->view.buf;
    self->data = self->base + HEADER_SIZE;
    self->capacity = capacity;
    self->mask = capacity - 1;
    self->max_payload = capacity / 2 - RECORD_HEADER;
    self->pos = self->published = pos;
    self->cached_read = __atomic_load_n(WORD(self->base, READ_CURSOR), __ATOMIC_ACQUIRE);
    self->count = count;
    self->dropped = dropped;
    self->signaled_epoch = 0;
    self->next_slot = next_slot & 1;
    self->doorbell_fd = doorbell_fd;
    self->fence = doorbell_fd >= 0;
    self->block_on_full = block_on_full;
    self->blocked = 0;
    return 0;
}

static void
writer_dealloc(WriterCore *self)
{
    Py_CLEAR(self->name);
    if (self->has_view)
        PyBuffer_Release(&self->view);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* 1 = appended, 0 = no room, -1 = error set. */
static int
writer_append(WriterCore *self, uint64_t type_id, const char *src, uint64_t length)
{
    uint64_t size = record_size(length);
    uint64_t pos = self->pos;
    uint64_t index = pos & self->mask;
    uint64_t tail = self->capacity - index;
    uint64_t needed = size <= tail ? size : tail + size;
    if (pos + needed - self->cached_read > self->capacity) {
        /* The consumer commits only positions it has read, so its cursor lies on a
         * record boundary (8-byte aligned), not past what was published and not a
         * whole capacity behind it. Anything else is corruption: trusting it would
         * make the writer overwrite unread records or wait forever for room. */
        uint64_t read = __atomic_load_n(WORD(self->base, READ_CURSOR), __ATOMIC_ACQUIRE);
        if (read > self->published || self->published - read > self->capacity ||
            (read & 7) != 0) {
            ring_error(RingCorrupted, self->name,
                       "read cursor %llu is impossible for write cursor %llu",
                       (unsigned long long)read, (unsigned long long)self->published);
            return -1;
        }
        self->cached_read = read;
        if (pos + needed - read > self->capacity)
            return 0;
    }
    if (size > tail) {
        __atomic_store_n(WORD(self->data, index),
                         (tail - RECORD_HEADER) | ((uint64_t)PADDING_TYPE << 32),
                         __ATOMIC_RELAXED);
        pos += tail;
        index = 0;
    }
    __atomic_store_n(WORD(self->data, index), length | (type_id << 32), __ATOMIC_RELAXED);
    memcpy(self->data + index + RECORD_HEADER, src, length);
    self->pos = pos + size;
    self->count++;
    return 1;
}

static int
writer_publish_now(WriterCore *self)
{
    uint64_t pos = self->pos;
    if (pos == self->published)
        return 0;
    uint64_t slot = self->next_slot ? COMMIT_SLOT_1 : COMMIT_SLOT_0;
    __atomic_store_n(WORD(self->base, slot), pos, __ATOMIC_RELAXED);
    __atomic_store_n(WORD(self->base, slot + 8), self->count, __ATOMIC_RELAXED);
    self->next_slot ^= 1;
    self->published = pos;
    if (!self->fence) {
        __atomic_store_n(WORD(self->base, WRITE_CURSOR), pos, __ATOMIC_RELEASE);
        return 0;
    }
    /* Dekker handshake with a parking consumer: store cursor, full fence, load epoch. */
    __atomic_store_n(WORD(self->base, WRITE_CURSOR), pos, __ATOMIC_SEQ_CST);
    uint64_t epoch = __atomic_load_n(WORD(self->base, SLEEP_EPOCH), __ATOMIC_SEQ_CST);
    if ((epoch & 1) && epoch != self->signaled_epoch) {
        uint64_t one = 1;
        self->signaled_epoch = epoch;
        if (write(self->doorbell_fd, &one, sizeof one) < 0 && errno != EAGAIN) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
    }
    return 0;
}

/* A record to append: parsed arguments of try_write/write, payload held. */
typedef struct {
    uint64_t type_id;
    const char *src;
    uint64_t length;
    Py_buffer buffer;
    int has_buffer;
    int publish;
    double timeout_s;  /* < 0: wait forever */
} Record;

static void
record_release(Record *record)
{
    if (record->has_buffer)
        PyBuffer_Release(&record->buffer);
}

/* Bind vectorcall arguments to `count` named slots: positional first, then keywords by
 * name. 0 on success; -1 (no error set) for too many, unknown or repeated arguments, for
 * the caller to raise its usage message. Missing slots stay NULL. */
static int
bind_arguments(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
               const char *const *names, Py_ssize_t count, PyObject **values)
{
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs > count)
        return -1;
    for (Py_ssize_t i = 0; i < nargs; i++)
        values[i] = args[i];
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t slot = -1;
        for (Py_ssize_t i = 0; i < count; i++) {
            if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0)
                slot = i;
        }
        if (slot < 0 || values[slot] != NULL)
            return -1;
        values[slot] = args[nargs + k];
    }
    return 0;
}

/* Parse (type_id, payload, publish=True[, timeout_s=None]); -1 with an error set. */
static int
parse_record(WriterCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
              int with_timeout, Record *record)
{
    static const char *const names[] = {"type_id", "payload", "publish", "timeout_s"};
    PyObject *values[4] = {NULL, NULL, NULL, NULL};
    if (bind_arguments(args, nargs, kwnames, names, with_timeout ? 4 : 3, values) < 0)
        goto usage;
    if (values[0] == NULL || values[1] == NULL)
        goto usage;
    if (!self->has_view) {
        ring_error(RingClosed, self->name, "ring end is closed");
        return -1;
    }
    long type_id = PyLong_AsLong(values[0]);
    if (type_id == -1 && PyErr_Occurred())
        return -1;
    if (type_id < 0 || type_id >= (long)PADDING_TYPE) {
        PyErr_Format(PyExc_ValueError, "type id %ld outside 0..%u", type_id, PADDING_TYPE - 1);
        return -1;
    }
    record->type_id = (uint64_t)type_id;
    record->publish = values[2] == NULL ? 1 : PyObject_IsTrue(values[2]);
    if (record->publish < 0)
        return -1;
    record->timeout_s = -1.0;
    if (values[3] != NULL && values[3] != Py_None) {
        record->timeout_s = PyFloat_AsDouble(values[3]);
        if (record->timeout_s == -1.0 && PyErr_Occurred())
            return -1;
    }
    record->has_buffer = 0;
    if (PyBytes_CheckExact(values[1])) {
        record->src = PyBytes_AS_STRING(values[1]);
        record->length = (uint64_t)PyBytes_GET_SIZE(values[1]);
    } else {
        if (PyObject_GetBuffer(values[1], &record->buffer, PyBUF_C_CONTIGUOUS) < 0)
            return -1;
        record->has_buffer = 1;
        record->src = record->buffer.buf;
        record->length = (uint64_t)record->buffer.len;
    }
    if (record->length > self->max_payload) {
        ring_error(RecordTooLarge, self->name,
                   "record of %llu bytes exceeds the largest payload of %llu bytes "
                   "a ring of capacity %llu can hold",
                   (unsigned long long)record->length, (unsigned long long)self->max_payload,
                   (unsigned long long)self->capacity);
        record_release(record);
        return -1;
    }
    return 0;
usage:
    PyErr_SetString(PyExc_TypeError, with_timeout
                                         ? "write(type_id, payload, publish=True, timeout_s=None)"
                                         : "try_write(type_id, payload, publish=True)");
    return -1;
}

static PyObject *
writer_try_write(WriterCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Record record;
    if (parse_record(self, args, nargs, kwnames, 0, &record) < 0)
        return NULL;
    int appended = writer_append(self, record.type_id, record.src, record.length);
    record_release(&record);
    if (appended < 0)
        return NULL;
    if (appended && record.publish && writer_publish_now(self) < 0)
        return NULL;
    return PyBool_FromLong(appended);
}

static double
monotonic_s(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* Wait for room under the block policy: spin, then yield, then sleep with the
 * GIL released, doubling the pause from 20 us to 1 ms. 1 = appended. */
static int
writer_wait_for_room(WriterCore *self, Record *record)
{
    double deadline = record->timeout_s < 0 ? -1.0 : monotonic_s() + record->timeout_s;
    long pause_ns = 20000;
    for (unsigned spins = 0;; spins++) {
        int appended = writer_append(self, record->type_id, record->src, record->length);
        if (appended != 0)
            return appended;
        if (spins < 200)
            continue;
        if (deadline >= 0 && monotonic_s() > deadline) {
            /* PyUnicode_FromFormat has no %g: format the timeout first. */
            char timeout[32];
            snprintf(timeout, sizeof timeout, "%.3g", record->timeout_s);
            ring_error(RingFull, self->name, "the consumer freed no room for %llu bytes in %s s",
                       (unsigned long long)record->length, timeout);
            return -1;
        }
        if (spins < 400) {
            sched_yield();
            continue;
        }
        struct timespec pause = {0, pause_ns};
        self->blocked = 1;
        Py_BEGIN_ALLOW_THREADS
        nanosleep(&pause, NULL);
        Py_END_ALLOW_THREADS
        self->blocked = 0;
        pause_ns = pause_ns * 2 > 1000000 ? 1000000 : pause_ns * 2;
        if (PyErr_CheckSignals() < 0)
            return -1;
    }
}

static PyObject *
writer_write(WriterCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Record record;
    if (parse_record(self, args, nargs, kwnames, 1, &record) < 0)
        return NULL;
    int appended = writer_append(self, record.type_id, record.src, record.length);
    if (appended == 0 && !self->block_on_full) {
        self->dropped++;
        __atomic_store_n(WORD(self->base, DROPPED), self->dropped, __ATOMIC_RELAXED);
        record_release(&record);
        Py_RETURN_FALSE;
    }
    if (appended == 0) {
        /* Let the consumer see what is already written, or it may never make room. */
        if (writer_publish_now(self) < 0) {
            record_release(&record);
            return NULL;
        }
        appended = writer_wait_for_room(self, &record);
    }
    record_release(&record);
    if (appended < 0)
        return NULL;
    if (record.publish && writer_publish_now(self) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

static PyObject *
writer_publish(WriterCore *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->has_view) {
        ring_error(RingClosed, self->name, "ring end is closed");
        return NULL;
    }
    if (writer_publish_now(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
core_release(PyObject *obj, Py_buffer *view, int *has_view)
{
    (void)obj;
    drop_view(view, has_view);
    Py_RETURN_NONE;
}

static PyObject *
writer_release(WriterCore *self, PyObject *Py_UNUSED(ignored))
{
    if (self->blocked) {
        PyErr_SetString(PyExc_BufferError, "a write is blocked on this ring end");
        return NULL;
    }
    return core_release((PyObject *)self, &self->view, &self->has_view);
}

static PyObject *
writer_get_u64(WriterCore *self, void *offset)
{
    return PyLong_FromUnsignedLongLong(*(uint64_t *)((char *)self + (Py_ssize_t)offset));
}

static PyMethodDef writer_methods[] = {
    {"try_write", (PyCFunction)(void (*)(void))writer_try_write, METH_FASTCALL | METH_KEYWORDS,
     "try_write(type_id, payload, publish=True) -> bool: append a record, False when full."},
    {"publish", (PyCFunction)writer_publish, METH_NOARGS,
     "publish(): make every written record visible and wake a parked consumer."},
    {"write", (PyCFunction)(void (*)(void))writer_write, METH_FASTCALL | METH_KEYWORDS,
     "write(type_id, payload, publish=True, timeout_s=None) -> bool: append under the"
     " ring's full policy: drop (False, counted) or block (raises RingFull on timeout)."},
    {"release", (PyCFunction)writer_release, METH_NOARGS, "release(): drop the mapping."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef writer_getset[] = {
    {"pos", (getter)writer_get_u64, NULL, "end of the last record written",
     (void *)offsetof(WriterCore, pos)},
    {"published", (getter)writer_get_u64, NULL, "write cursor as last published",
     (void *)offsetof(WriterCore, published)},
    {"count", (getter)writer_get_u64, NULL, "records written since the ring was created",
     (void *)offsetof(WriterCore, count)},
    {"dropped", (getter)writer_get_u64, NULL, "records dropped on a full ring",
     (void *)offsetof(WriterCore, dropped)},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject WriterCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ringbuf._core.WriterCore",
    .tp_basicsize = sizeof(WriterCore),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The producer's per-record path over a mapped ring.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)writer_init,
    .tp_dealloc = (destructor)writer_dealloc,
    .tp_methods = writer_methods,
    .tp_getset = writer_getset,
};

/* ----------------------------------------------------------- PayloadView -- */

/* A read-only buffer over one record, reused record after record by poll_decode:
 * it saves allocating and releasing a memoryview per message. It is valid only
 * while the decoder runs; afterwards any attempt to read it raises. */
typedef struct {
    PyObject_HEAD
    char *buf;
    Py_ssize_t len;
    Py_ssize_t exports;
    int valid;
} PayloadView;

static int
payload_getbuffer(PayloadView *self, Py_buffer *view, int flags)
{
    if (!self->valid) {
        view->obj = NULL;
        PyErr_SetString(PyExc_ValueError,
                        "ring payload used after its handler returned: decode or copy it "
                        "inside the call");
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)self, self->buf, self->len, 1, flags) < 0)
        return -1;
    self->exports++;
    return 0;
}

static void
payload_releasebuffer(PayloadView *self, Py_buffer *Py_UNUSED(view))
{
    self->exports--;
}

static Py_ssize_t
payload_length(PayloadView *self)
{
    return self->valid ? self->len : 0;
}

static PyBufferProcs payload_as_buffer = {
    (getbufferproc)payload_getbuffer,
    (releasebufferproc)payload_releasebuffer,
};

static PySequenceMethods payload_as_sequence = {
    .sq_length = (lenfunc)payload_length,
};

static PyTypeObject PayloadViewType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ringbuf._core.PayloadView",
    .tp_basicsize = sizeof(PayloadView),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Read-only view of one ring record, valid only while it is being decoded.",
    .tp_as_buffer = &payload_as_buffer,
    .tp_as_sequence = &payload_as_sequence,
};

/* ------------------------------------------------------------ ReaderCore -- */

/* The reader keeps two positions. `pos` is the next record to hand out: every
 * record before it was handled. `committed` is the read cursor as last stored in
 * shared memory. They differ only while the caller polls with commit=False: it
 * handles a batch, saves its own durable state, and only then calls commit(). A
 * consumer that dies in between leaves the read cursor at `committed`, so whoever
 * attaches next gets the batch again, and the producer cannot reuse its space. */
typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view;
    int busy;            /* handlers of a batch are running: no re-entry, no release */
    char *base;
    char *data;
    uint64_t capacity;
    uint64_t mask;
    uint64_t max_payload;
    uint64_t pos;        /* next record to hand out; everything before it is handled */
    uint64_t committed;  /* read cursor as last stored in shared memory */
    uint64_t handled;    /* records handled since the ring was created */
    uint64_t consumed;   /* records committed since the ring was created */
    PyObject *name;      /* the ring's name, for error messages */
    PayloadView *spare;  /* reused by poll_decode while nobody else holds it */
} ReaderCore;

static int
reader_init(ReaderCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"buffer", "capacity", "pos", "consumed", "name", NULL};
    PyObject *obj, *name = NULL;
    unsigned long long capacity, pos, consumed;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OKKK|U", kwlist, &obj, &capacity, &pos,
                                     &consumed, &name))
        return -1;
    if (self->has_view) {
        PyErr_SetString(PyExc_RuntimeError, "ReaderCore is already initialised");
        return -1;
    }
    if (set_ring_name(&self->name, name) < 0)
        return -1;
    if (pos & 7) {
        /* Records are 8-byte aligned: an unaligned cursor would read misaligned
         * headers, and the bounds below assume alignment. */
        ring_error(RingCorrupted, self->name, "read cursor %llu is not 8-byte aligned", pos);
        return -1;
    }
    if (map_ring(obj, &self->view, capacity) < 0)
        return -1;
    self->has_view = 1;
    self->busy = 0;
    self->base = self->view.buf;
    self->data = self->base + HEADER_SIZE;
    self->capacity = capacity;
    self->mask = capacity - 1;
    self->max_payload = capacity / 2 - RECORD_HEADER;
    self->pos = self->committed = pos;
    self->handled = self->consumed = consumed;
    self->spare = NULL;
    return 0;
}

static void
reader_dealloc(ReaderCore *self)
{
    Py_CLEAR(self->spare);
    Py_CLEAR(self->name);
    if (self->has_view)
        PyBuffer_Release(&self->view);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* 1 when the core may start a batch or commit; 0 with an error set. A handler that
 * polled, committed or released its own ring would pull the position or the mapping
 * from under the batch that is calling it. */
static int
reader_usable(ReaderCore *self, const char *what)
{
    if (!self->has_view) {
        ring_error(RingClosed, self->name, "ring end is closed");
        return 0;
    }
    if (self->busy) {
        ring_error(PyExc_RuntimeError, self->name,
                   "%s() called from a handler of this ring's own poll", what);
        return 0;
    }
    return 1;
}

/* Store what was handled: CONSUMED first (relaxed: a statistic), then the read
 * cursor with release, so that every read of the handled records happens before
 * the producer can see their space as free. Returns the records newly committed. */
static uint64_t
reader_store(ReaderCore *self)
{
    uint64_t newly = self->handled - self->consumed;
    if (newly) {
        self->consumed = self->handled;
        __atomic_store_n(WORD(self->base, CONSUMED), self->consumed, __ATOMIC_RELAXED);
    }
    if (self->pos != self->committed) {
        self->committed = self->pos;
        __atomic_store_n(WORD(self->base, READ_CURSOR), self->pos, __ATOMIC_RELEASE);
    }
    return newly;
}

/* A write cursor the producer can have published: on a record boundary (8-byte
 * aligned), not behind what this reader has handled, and at most a capacity ahead
 * of what it has committed (the producer never overwrites uncommitted records).
 * 0 when possible, -1 with RingCorrupted set. */
static inline int
reader_check_write(ReaderCore *self, uint64_t write)
{
    if ((write & 7) == 0 && write >= self->pos && write - self->committed <= self->capacity)
        return 0;
    ring_error(RingCorrupted, self->name,
               "write cursor %llu is impossible for read position %llu "
               "(committed %llu, capacity %llu)",
               (unsigned long long)write, (unsigned long long)self->pos,
               (unsigned long long)self->committed, (unsigned long long)self->capacity);
    return -1;
}

/* Find the record at *pos_io, skipping the padding the producer leaves where a record
 * did not fit before the end of the data area. Requires *pos_io < write, both
 * aligned. Every bound the producer keeps is checked, so that a corrupted header
 * raises instead of looping, reading outside the data area, or handing out stale
 * records of an earlier lap from past the write cursor:
 *  - a padding claims exactly the bytes left to the end of the data area, and the
 *    record that did not fit follows it in the same publish, so it ends strictly
 *    below the write cursor. (So a padding at data index 0, which would claim the
 *    whole data area, is never valid: no record is larger than half of it.)
 *  - a record fits before the end of the data area, in the largest payload, and
 *    below the write cursor.
 * So each step moves forward by 8 bytes or more and stays below write: a caller
 * looping until write ends. 0 with the record's position, type and length set;
 * -1 with RingCorrupted set and *pos_io at the offending header. */
static inline int
reader_locate(ReaderCore *self, uint64_t *pos_io, uint64_t write, uint64_t *type_id_out,
              uint64_t *length_out)
{
    uint64_t pos = *pos_io;
    for (;;) {
        uint64_t index = pos & self->mask;
        uint64_t tail = self->capacity - index;
        uint64_t header = __atomic_load_n(WORD(self->data, index), __ATOMIC_RELAXED);
        uint64_t length = header & LENGTH_MASK;
        uint64_t type_id = (header >> 32) & 0xFFFF;
        if (type_id == PADDING_TYPE) {
            if (length != tail - RECORD_HEADER || tail >= write - pos) {
                ring_error(RingCorrupted, self->name,
                           "padding record at %llu claims %llu bytes: a padding claims the "
                           "%llu bytes to the end of the data area and a record follows "
                           "it below the write cursor %llu",
                           (unsigned long long)pos, (unsigned long long)length,
                           (unsigned long long)(tail - RECORD_HEADER),
                           (unsigned long long)write);
                *pos_io = pos;
                return -1;
            }
            pos += tail;
            continue;
        }
        uint64_t size = record_size(length);
        if (length > self->max_payload || size > tail || size > write - pos) {
            ring_error(RingCorrupted, self->name,
                       "record at %llu claims %llu bytes (write cursor %llu)",
                       (unsigned long long)pos, (unsigned long long)length,
                       (unsigned long long)write);
            *pos_io = pos;
            return -1;
        }
        *pos_io = pos;
        *type_id_out = type_id;
        *length_out = length;
        return 0;
    }
}

/* Hand the payload to the handler as a memoryview that is released right after
 * the call: a handler that keeps it gets an error on use instead of reading
 * bytes the producer has since overwritten. */
static PyObject *
deliver(PyObject *handler, uint64_t type_id, char *payload, uint64_t length)
{
    PyObject *view = PyMemoryView_FromMemory(payload, (Py_ssize_t)length, PyBUF_READ);
    if (view == NULL)
        return NULL;
    PyObject *type_obj = PyLong_FromUnsignedLong((unsigned long)type_id);
    if (type_obj == NULL) {
        Py_DECREF(view);
        return NULL;
    }
    PyObject *call_args[2] = {type_obj, view};
    PyObject *result = PyObject_Vectorcall(handler, call_args, 2, NULL);
    Py_DECREF(type_obj);
    PyObject *error_type, *error_value, *error_tb;
    PyErr_Fetch(&error_type, &error_value, &error_tb);
    PyObject *released = PyObject_CallMethodNoArgs(view, release_name);
    Py_DECREF(view);
    if (released == NULL) {
        /* The handler exported the view further (e.g. numpy.frombuffer): a bug that
         * would read overwritten bytes later. Report it over any handler error. */
        Py_XDECREF(error_type);
        Py_XDECREF(error_value);
        Py_XDECREF(error_tb);
        Py_XDECREF(result);
        return NULL;
    }
    Py_DECREF(released);
    PyErr_Restore(error_type, error_value, error_tb);
    return result;
}

/* Add a PEP 678 note to the pending exception saying which record caused it. */
static void
note_record(const char *stage, uint64_t type_id, uint64_t length, uint64_t pos)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL) {
        PyObject *note = PyUnicode_FromFormat(
            "while %s ring record type %llu (%llu bytes) at position %llu", stage,
            (unsigned long long)type_id, (unsigned long long)length, (unsigned long long)pos);
        if (note != NULL) {
            PyObject *added = PyObject_CallMethod(value, "add_note", "O", note);
            Py_XDECREF(added);
            Py_DECREF(note);
            if (added == NULL)
                PyErr_Clear();
        }
    }
    PyErr_Restore(type, value, tb);
}

/* Decode with decoders[type_id] (a callable taking the payload buffer), then hand
 * the message to `handlers`: one callable for every type, or (when `table` is the
 * handlers tuple) table[type_id], so that a consumer dispatches by type id here
 * rather than with a dict lookup on type(message) in Python. */
static PyObject *
decode_and_deliver(ReaderCore *self, PyObject *decoders, PyObject *handlers, PyObject *table,
                   uint64_t type_id, char *payload, uint64_t length, uint64_t pos)
{
    PyObject *decode = (Py_ssize_t)type_id < PyTuple_GET_SIZE(decoders)
                           ? PyTuple_GET_ITEM(decoders, (Py_ssize_t)type_id)
                           : Py_None;
    if (decode == Py_None) {
        ring_error(UnknownRecordType, self->name,
                   "record type %llu at position %llu has no decoder",
                   (unsigned long long)type_id, (unsigned long long)pos);
        return NULL;
    }
    PyObject *handler = handlers;
    if (table != NULL) {
        handler = (Py_ssize_t)type_id < PyTuple_GET_SIZE(table)
                      ? PyTuple_GET_ITEM(table, (Py_ssize_t)type_id)
                      : Py_None;
        if (handler == Py_None) {
            ring_error(UnknownRecordType, self->name,
                       "record type %llu at position %llu has no handler",
                       (unsigned long long)type_id, (unsigned long long)pos);
            return NULL;
        }
    }
    if (self->spare == NULL) {
        self->spare = PyObject_New(PayloadView, &PayloadViewType);
        if (self->spare == NULL)
            return NULL;
        self->spare->exports = 0;
    }
    PayloadView *view = self->spare;
    view->buf = payload;
    view->len = (Py_ssize_t)length;
    view->valid = 1;
    PyObject *msg = PyObject_CallOneArg(decode, (PyObject *)view);
    view->valid = 0;
    if (view->exports != 0 || Py_REFCNT(view) != 1) {
        /* The decoder kept the payload (e.g. a msgspec.Raw field): it would read bytes
         * the producer overwrites. Give the view up and refuse the message. */
        Py_CLEAR(self->spare);
        Py_XDECREF(msg);
        PyErr_SetString(PyExc_BufferError,
                        "the decoded message keeps a reference to ring memory; decode into "
                        "types that own their data");
        note_record("decoding", type_id, length, pos);
        return NULL;
    }
    if (msg == NULL) {
        note_record("decoding", type_id, length, pos);
        return NULL;
    }
    PyObject *result = PyObject_CallOneArg(handler, msg);
    Py_DECREF(msg);
    if (result == NULL)
        note_record("handling", type_id, length, pos);
    return result;
}

/* The consumer's batch loop. With decoders == NULL the handler gets
 * (type_id, payload view); otherwise it gets the decoded message. With commit,
 * everything handled so far (this batch and earlier uncommitted ones) is committed
 * on return, also when a handler raised or the ring is corrupted: the records
 * before the failing one count as handled, the failing one is next. */
static PyObject *
reader_drain(ReaderCore *self, PyObject *decoders, PyObject *handlers, Py_ssize_t limit,
             long long spin_ns, int commit)
{
    if (!reader_usable(self, decoders == NULL ? "poll" : "poll_decode"))
        return NULL;
    uint64_t *write_cursor = WORD(self->base, WRITE_CURSOR);
    uint64_t write = __atomic_load_n(write_cursor, __ATOMIC_ACQUIRE);
    uint64_t pos = self->pos;
    if (write == pos && spin_ns > 0) {
        /* Busy-poll here rather than in Python: the record is handled the moment
         * it lands, without a round trip through the interpreter. */
        uint64_t deadline = monotonic_ns() + (uint64_t)spin_ns;
        for (unsigned spins = 1; write == pos; spins++) {
            cpu_relax();
            if ((spins & 63) == 0 && monotonic_ns() >= deadline)
                break;
            write = __atomic_load_n(write_cursor, __ATOMIC_ACQUIRE);
        }
    }
    if (write == pos) {
        if (commit && pos != self->committed)
            reader_store(self);
        return PyLong_FromLong(0);
    }
    if (reader_check_write(self, write) < 0)
        return NULL;
    PyObject *table = decoders != NULL && PyTuple_Check(handlers) ? handlers : NULL;
    uint64_t count = 0;
    int failed = 0;
    self->busy = 1;
    while (pos != write && (Py_ssize_t)count < limit) {
        uint64_t type_id, length;
        if (reader_locate(self, &pos, write, &type_id, &length) < 0) {
            failed = 1;
            break;
        }
        char *payload = self->data + (pos & self->mask) + RECORD_HEADER;
        PyObject *result = decoders == NULL
                               ? deliver(handlers, type_id, payload, length)
                               : decode_and_deliver(self, decoders, handlers, table, type_id,
                                                    payload, length, pos);
        if (result == NULL) {
            failed = 1;
            break;
        }
        Py_DECREF(result);
        pos += record_size(length);
        count++;
    }
    self->busy = 0;
    self->pos = pos;
    self->handled += count;
    if (commit)
        reader_store(self);
    if (failed)
        return NULL;
    return PyLong_FromUnsignedLongLong(count);
}

/* Arguments of poll(handler, limit=256, spin_ns=0, commit=True) and
 * poll_decode(decoders, handlers, limit=256, spin_ns=0, commit=True), by position
 * or keyword. */
typedef struct {
    PyObject *lead[2];  /* handler, or decoders and handlers */
    Py_ssize_t limit;
    long long spin_ns;
    int commit;
} DrainArgs;

static int
parse_drain_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, Py_ssize_t nlead,
                 const char *const *names, const char *usage, DrainArgs *out)
{
    PyObject *values[5] = {NULL, NULL, NULL, NULL, NULL};
    if (bind_arguments(args, nargs, kwnames, names, nlead + 3, values) < 0)
        goto usage;
    for (Py_ssize_t i = 0; i < nlead; i++) {
        if (values[i] == NULL)
            goto usage;
        out->lead[i] = values[i];
    }
    out->limit = 256;
    out->spin_ns = 0;
    out->commit = 1;
    PyObject *limit = values[nlead], *spin_ns = values[nlead + 1], *commit = values[nlead + 2];
    if (limit != NULL) {
        out->limit = PyLong_AsSsize_t(limit);
        if (out->limit == -1 && PyErr_Occurred())
            return -1;
    }
    if (spin_ns != NULL) {
        out->spin_ns = PyLong_AsLongLong(spin_ns);
        if (out->spin_ns == -1 && PyErr_Occurred())
            return -1;
    }
    if (commit != NULL) {
        out->commit = commit == Py_True ? 1 : commit == Py_False ? 0 : PyObject_IsTrue(commit);
        if (out->commit < 0)
            return -1;
    }
    return 0;
usage:
    PyErr_SetString(PyExc_TypeError, usage);
    return -1;
}

static PyObject *
reader_poll(ReaderCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"handler", "limit", "spin_ns", "commit"};
    DrainArgs a;
    if (parse_drain_args(args, nargs, kwnames, 1, names,
                         "poll(handler, limit=256, spin_ns=0, commit=True)", &a) < 0)
        return NULL;
    return reader_drain(self, NULL, a.lead[0], a.limit, a.spin_ns, a.commit);
}

static PyObject *
reader_poll_decode(ReaderCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"decoders", "handlers", "limit", "spin_ns", "commit"};
    static const char usage[] =
        "poll_decode(decoders: tuple, handlers, limit=256, spin_ns=0, commit=True)";
    DrainArgs a;
    if (parse_drain_args(args, nargs, kwnames, 2, names, usage, &a) < 0)
        return NULL;
    if (!PyTuple_Check(a.lead[0])) {
        PyErr_SetString(PyExc_TypeError, usage);
        return NULL;
    }
    return reader_drain(self, a.lead[0], a.lead[1], a.limit, a.spin_ns, a.commit);
}

static PyObject *
reader_commit(ReaderCore *self, PyObject *Py_UNUSED(ignored))
{
    if (!reader_usable(self, "commit"))
        return NULL;
    return PyLong_FromUnsignedLongLong(reader_store(self));
}

static PyObject *
reader_peek(ReaderCore *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->has_view) {
        ring_error(RingClosed, self->name, "ring end is closed");
        return NULL;
    }
    uint64_t write = __atomic_load_n(WORD(self->base, WRITE_CURSOR), __ATOMIC_ACQUIRE);
    uint64_t pos = self->pos;
    if (write == pos)
        Py_RETURN_NONE;
    uint64_t type_id, length;
    if (reader_check_write(self, write) < 0 ||
        reader_locate(self, &pos, write, &type_id, &length) < 0)
        return NULL;
    return Py_BuildValue("(Ky#)", (unsigned long long)type_id,
                         self->data + (pos & self->mask) + RECORD_HEADER, (Py_ssize_t)length);
}

static PyObject *
reader_available(ReaderCore *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->has_view) {
        ring_error(RingClosed, self->name, "ring end is closed");
        return NULL;
    }
    uint64_t write = __atomic_load_n(WORD(self->base, WRITE_CURSOR), __ATOMIC_ACQUIRE);
    if (write == self->pos)
        Py_RETURN_FALSE;
    /* Raise here rather than answer True: a wait strategy would return at once, and
     * a caller that only waits would spin on a ring that can never be read. */
    if (reader_check_write(self, write) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

static PyObject *
reader_release(ReaderCore *self, PyObject *Py_UNUSED(ignored))
{
    if (self->busy) {
        /* The batch running below this handler still reads the mapping. */
        ring_error(PyExc_BufferError, self->name, "a poll of this ring end is running");
        return NULL;
    }
    return core_release((PyObject *)self, &self->view, &self->has_view);
}

static PyObject *
reader_get_u64(ReaderCore *self, void *offset)
{
    return PyLong_FromUnsignedLongLong(*(uint64_t *)((char *)self + (Py_ssize_t)offset));
}

static PyObject *
reader_get_pending(ReaderCore *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->handled - self->consumed);
}

static PyObject *
reader_get_name(ReaderCore *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->name != NULL ? self->name : Py_None);
}

static PyMethodDef reader_methods[] = {
    {"poll", (PyCFunction)(void (*)(void))reader_poll, METH_FASTCALL | METH_KEYWORDS,
     "poll(handler, limit=256, spin_ns=0, commit=True) -> int: hand up to limit records to"
     " handler(type_id, view); with nothing to read, busy-poll up to spin_ns first. With"
     " commit, everything handled is committed on return; without, call commit() later."},
    {"poll_decode", (PyCFunction)(void (*)(void))reader_poll_decode,
     METH_FASTCALL | METH_KEYWORDS,
     "poll_decode(decoders, handlers, limit=256, spin_ns=0, commit=True) -> int: like poll,"
     " but decoders[type_id] turns each payload into a message, given to handlers(message)"
     " or, when handlers is a tuple, to handlers[type_id](message)."},
    {"commit", (PyCFunction)reader_commit, METH_NOARGS,
     "commit() -> int: store the handled position as the read cursor; returns the records"
     " newly committed."},
    {"peek", (PyCFunction)reader_peek, METH_NOARGS,
     "peek() -> (type_id, bytes) | None: a copy of the next unhandled record."},
    {"available", (PyCFunction)reader_available, METH_NOARGS,
     "available() -> bool: records are published past the handled position."},
    {"release", (PyCFunction)reader_release, METH_NOARGS, "release(): drop the mapping."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef reader_getset[] = {
    {"pos", (getter)reader_get_u64, NULL,
     "handled position: the next record to hand out (during a batch: its start)",
     (void *)offsetof(ReaderCore, pos)},
    {"committed", (getter)reader_get_u64, NULL, "read cursor as last committed",
     (void *)offsetof(ReaderCore, committed)},
    {"handled", (getter)reader_get_u64, NULL,
     "records handled since the ring was created, committed or not",
     (void *)offsetof(ReaderCore, handled)},
    {"consumed", (getter)reader_get_u64, NULL, "records committed since the ring was created",
     (void *)offsetof(ReaderCore, consumed)},
    {"pending", (getter)reader_get_pending, NULL, "records handled and not yet committed",
     NULL},
    {"name", (getter)reader_get_name, NULL, "the ring's name", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ReaderCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ringbuf._core.ReaderCore",
    .tp_basicsize = sizeof(ReaderCore),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The consumer's per-record path over a mapped ring.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)reader_init,
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_methods = reader_methods,
    .tp_getset = reader_getset,
};

/* ------------------------------------------------------------- spinning -- */

#define MAX_SPIN_READERS 64

/* spin_until_available(readers, budget_ns) -> bool: busy-poll the write cursors of
 * up to 64 ReaderCores in C; True as soon as one has records, False after budget. */
static PyObject *
spin_until_available(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyTuple_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "spin_until_available(readers: tuple, budget_ns)");
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(args[0]);
    if (count > MAX_SPIN_READERS) {
        PyErr_Format(PyExc_ValueError, "at most %d readers", MAX_SPIN_READERS);
        return NULL;
    }
    long long budget_ns = PyLong_AsLongLong(args[1]);
    if (budget_ns == -1 && PyErr_Occurred())
        return NULL;
    uint64_t *cursors[MAX_SPIN_READERS];
    uint64_t positions[MAX_SPIN_READERS];
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(args[0], i);
        if (!PyObject_TypeCheck(item, &ReaderCoreType)) {
            PyErr_SetString(PyExc_TypeError, "spin_until_available takes ReaderCore objects");
            return NULL;
        }
        ReaderCore *reader = (ReaderCore *)item;
        if (!reader->has_view) {
            ring_error(RingClosed, reader->name, "ring end is closed");
            return NULL;
        }
        /* The handled position: records handled and not yet committed are not news. */
        cursors[i] = WORD(reader->base, WRITE_CURSOR);
        positions[i] = reader->pos;
    }
    uint64_t deadline = monotonic_ns() + (uint64_t)(budget_ns > 0 ? budget_ns : 0);
    for (unsigned spins = 0;; spins++) {
        for (Py_ssize_t i = 0; i < count; i++) {
            if (__atomic_load_n(cursors[i], __ATOMIC_ACQUIRE) != positions[i])
                Py_RETURN_TRUE;
        }
        if ((spins & 63) == 0 && monotonic_ns() >= deadline)
            Py_RETURN_FALSE;
        cpu_relax();
    }
}

static PyMethodDef module_functions[] = {
    {"hdr_bucket", (PyCFunction)(void (*)(void))hdr_bucket, METH_FASTCALL,
     "hdr_bucket(value_ns, buckets) -> int: the histogram bucket HdrSeries counts it in."},
    {"spin_until_available", (PyCFunction)(void (*)(void))spin_until_available, METH_FASTCALL,
     "spin_until_available(readers, budget_ns) -> bool"},
    {NULL, NULL, 0, NULL},
};

/* ---------------------------------------------------------------- module -- */

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT, "_core",
    "The ring buffer's per-record path and shared-memory atomics.", -1, module_functions,
};

static int
add_type(PyObject *m, PyTypeObject *type, const char *name)
{
    if (PyType_Ready(type) < 0)
        return -1;
    Py_INCREF(type);
    if (PyModule_AddObject(m, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC
PyInit__core(void)
{
    PyObject *errors = PyImport_ImportModule("ringbuf.errors");
    if (errors == NULL)
        return NULL;
    RingCorrupted = PyObject_GetAttrString(errors, "RingCorrupted");
    RecordTooLarge = PyObject_GetAttrString(errors, "RecordTooLarge");
    UnknownRecordType = PyObject_GetAttrString(errors, "UnknownRecordType");
    RingFull = PyObject_GetAttrString(errors, "RingFull");
    RingClosed = PyObject_GetAttrString(errors, "RingClosed");
    Py_DECREF(errors);
    if (RingCorrupted == NULL || RecordTooLarge == NULL || UnknownRecordType == NULL ||
        RingFull == NULL || RingClosed == NULL)
        return NULL;
    release_name = PyUnicode_InternFromString("release");
    seq_name = PyUnicode_InternFromString("seq");
    ts_name = PyUnicode_InternFromString("ts_ns");
    if (release_name == NULL || seq_name == NULL || ts_name == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&core_module);
    if (m == NULL)
        return NULL;
    if (PyType_Ready(&PayloadViewType) < 0 || PyType_Ready(&DeliveryType) < 0)
        goto fail;
    if (add_type(m, &SharedWordsType, "SharedWords") < 0 ||
        add_type(m, &HdrSeriesType, "HdrSeries") < 0 ||
        add_type(m, &LogAppenderType, "LogAppender") < 0 ||
        add_type(m, &InstantType, "Instant") < 0 ||
        add_type(m, &InboxCoreType, "InboxCore") < 0 ||
        add_type(m, &WriterCoreType, "WriterCore") < 0 ||
        add_type(m, &ReaderCoreType, "ReaderCore") < 0)
        goto fail;
    struct { const char *name; long value; } constants[] = {
        {"HEADER_SIZE", HEADER_SIZE}, {"LINE", LINE},
        {"WRITE_CURSOR", WRITE_CURSOR}, {"READ_CURSOR", READ_CURSOR},
        {"COMMIT_SLOT_0", COMMIT_SLOT_0}, {"COMMIT_SLOT_1", COMMIT_SLOT_1},
        {"DROPPED", DROPPED}, {"PRODUCER_PID", PRODUCER_PID},
        {"SLEEP_EPOCH", SLEEP_EPOCH}, {"CONSUMER_PID", CONSUMER_PID},
        {"CONSUMED", CONSUMED}, {"RECORD_HEADER", RECORD_HEADER},
        {"PADDING_TYPE", PADDING_TYPE},
    };
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
        if (PyModule_AddIntConstant(m, constants[i].name, constants[i].value) < 0)
            goto fail;
    }
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
