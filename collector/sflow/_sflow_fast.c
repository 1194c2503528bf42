/*
 * sFlow v5 fast path: many datagrams in, flat sample columns out (see collector/sflow/fast.py).
 *
 * The walk mirrors collector/sflow/decoder.py check for check (same order, same reasons), and the
 * accumulation mirrors collector/sflow/fast_fallback.py; the equivalence tests hold all three
 * together. Every read is bounds-checked against the end of its container before it happens;
 * counts are checked against the bytes that remain before any loop runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

enum {
    OK = 0,
    E_TRUNCATED,
    E_BAD_VERSION,
    E_BAD_ADDRESS_TYPE,
    E_LENGTH_OVERRUN,
    E_COUNT_OVERRUN,
    E_COUNT /* number of reasons + 1 */
};
static const char *const REASON_NAMES[E_COUNT] = {
    "ok", "truncated", "bad_version", "bad_address_type", "length_overrun", "count_overrun",
};

#define RESTART_UPTIME_STEP_MS 1000u
#define HALF_RANGE 0x80000000u
#define INTERFACE_AGENT 0x3FFFFFFFu /* ifIndex value meaning "the agent itself" */
/* Bounds on state the sender chooses the keys of (as in collector/sflow/fast_fallback.py) */
#define MAX_SUB_AGENTS 64     /* (agent, sub-agent) streams per agent; the oldest is evicted */
#define MAX_DATA_SOURCES 1024 /* drop baselines per stream; more data sources are not tracked */

/* ---------- growable column buffers ---------- */

typedef struct {
    char *data;
    size_t len;  /* bytes used */
    size_t cap;
} Column;

static int column_reserve(Column *c, size_t extra) {
    if (c->len + extra <= c->cap) return 0;
    size_t cap = c->cap ? c->cap : 4096;
    while (cap < c->len + extra) cap *= 2;
    char *data = PyMem_Realloc(c->data, cap);
    if (!data) {
        PyErr_NoMemory();
        return -1;
    }
    c->data = data;
    c->cap = cap;
    return 0;
}

static inline int column_push(Column *c, const void *value, size_t size) {
    if (c->len + size > c->cap && column_reserve(c, size) < 0) return -1;
    memcpy(c->data + c->len, value, size);
    c->len += size;
    return 0;
}

static PyObject *column_take(Column *c) {
    PyObject *out = PyByteArray_FromStringAndSize(c->data ? c->data : "", (Py_ssize_t)c->len);
    c->len = 0;
    return out;
}

/* ---------- drop counter state: open addressing on (source slot, data source) ---------- */

typedef struct {
    uint64_t slot_plus_one; /* 0: empty */
    uint64_t data_source;   /* type << 32 | index */
    uint32_t drops;
} DropEntry;

typedef struct {
    DropEntry *entries;
    size_t mask; /* capacity - 1, capacity a power of two */
    size_t used;
    size_t stale; /* entries of evicted streams, still in the table until the next compaction */
} DropTable;

static inline size_t drop_hash(uint64_t a, uint64_t b) {
    uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull + (a << 6));
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return (size_t)(h ^ (h >> 32));
}

static int drop_table_grow(DropTable *t) {
    size_t capacity = t->entries ? (t->mask + 1) * 2 : 64;
    DropEntry *entries = PyMem_Calloc(capacity, sizeof(DropEntry));
    if (!entries) {
        PyErr_NoMemory();
        return -1;
    }
    if (t->entries) {
        for (size_t i = 0; i <= t->mask; i++) {
            DropEntry *e = &t->entries[i];
            if (!e->slot_plus_one) continue;
            size_t j = drop_hash(e->slot_plus_one, e->data_source) & (capacity - 1);
            while (entries[j].slot_plus_one) j = (j + 1) & (capacity - 1);
            entries[j] = *e;
        }
        PyMem_Free(t->entries);
    }
    t->entries = entries;
    t->mask = capacity - 1;
    return 0;
}

/* The entry for the key (``slot``: the stream's generation << 32 | its slot); absent, it is
 * inserted (is_new = 1) when ``may_insert``, else NULL with is_new = 0. NULL with is_new = -1 on
 * a memory error. */
static DropEntry *drop_table_get(DropTable *t, uint64_t slot, uint64_t data_source, int may_insert, int *is_new) {
    if (may_insert && (!t->entries || (t->used + 1) * 2 > t->mask + 1)) {
        if (drop_table_grow(t) < 0) {
            *is_new = -1;
            return NULL;
        }
    }
    *is_new = 0;
    if (!t->entries) return NULL;
    uint64_t key = slot + 1;
    size_t i = drop_hash(key, data_source) & t->mask;
    while (t->entries[i].slot_plus_one) {
        DropEntry *e = &t->entries[i];
        if (e->slot_plus_one == key && e->data_source == data_source) return e;
        i = (i + 1) & t->mask;
    }
    if (!may_insert) return NULL;
    t->entries[i].slot_plus_one = key;
    t->entries[i].data_source = data_source;
    t->used++;
    *is_new = 1;
    return &t->entries[i];
}

/* ---------- per-(agent, sub-agent) sequence state and per-agent counters ---------- */

typedef struct {
    uint32_t agent_id;
    uint32_t last_sequence;
    uint32_t last_uptime;
    uint32_t sub_agent;
    uint32_t generation;   /* bumped when the slot is reused: its old drop entries become stale */
    uint32_t drop_entries; /* drop baselines of this generation */
} SourceState;

typedef struct {
    int64_t batch_index; /* -1: not yet in this batch */
    uint64_t lost;
    uint64_t drops;
    uint32_t type;                  /* address type and address: the key of its streams */
    uint8_t addr[16];
    uint32_t streams;               /* slots in ring */
    uint32_t ring_next;             /* the oldest stream once the ring is full */
    uint32_t ring[MAX_SUB_AGENTS];  /* the agent's stream slots, oldest first from ring_next */
} AgentState;

/* One row's next-hop address, interned into the batch's next-hop table once its datagram is
 * known to be valid (so a malformed datagram leaves no name behind, as in the fallback). */
typedef struct {
    size_t row;     /* row in its family's columns */
    uint8_t v6_row; /* 1: the row is in the v6 columns */
    uint8_t type;   /* sFlow address type: 1 IPv4, 2 IPv6 */
    uint8_t addr[16];
} PendingHop;

/* The batch's next-hop names: open addressing on (type, address) -> index into next_hops. */
typedef struct {
    uint32_t index_plus_one; /* 0: empty */
    uint8_t type;
    uint8_t addr[16];
} HopEntry;

typedef struct {
    HopEntry *entries;
    size_t mask;
    size_t used;
} HopTable;

/* One flow sample's data source, kept until its datagram is known to be valid. */
typedef struct {
    uint32_t source_type;
    uint32_t source_index;
    uint32_t drops;
} PendingDrops;

typedef struct {
    PyObject_HEAD
    /* persistent */
    PyObject *agent_ids;    /* bytes(type + address) -> int */
    PyObject *agent_names;  /* list of str, by agent id */
    AgentState *agents;
    size_t agents_cap;
    PyObject *source_ids;   /* bytes(type + address + sub-agent) -> int */
    SourceState *sources;
    size_t sources_cap;
    size_t sources_len;
    DropTable drop_table;
    PendingDrops *pending;
    size_t pending_cap;
    PendingHop *hops;
    size_t hops_cap;
    /* per batch */
    PyObject *batch_agents; /* list of str */
    PyObject *batch_hops;   /* list of str: next-hop names, indexed by the next-hop columns */
    HopTable hop_table;
    PyObject *malformed;    /* (reason, agent) -> int */
    Column v4_agent, v4_dst, v4_bytes, v4_packets, v4_in, v4_hop;
    Column v6_agent, v6_hi, v6_lo, v6_bytes, v6_packets, v6_in, v6_hop;
    uint64_t datagrams, flow_samples, counter_samples, non_ip_samples;
    uint64_t sub_agents_evicted, data_sources_refused; /* per batch */
    /* last source looked up: consecutive datagrams usually come from the same agent */
    uint8_t cached_key[24];
    size_t cached_key_len;
    int64_t cached_source;
} Decoder;

/* ---------- the walk ---------- */

typedef struct {
    const uint8_t *p;
    size_t off;
    size_t end;
} Cursor;

static inline uint32_t rd32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

#define NEED(c, n) \
    do { \
        if ((c)->end - (c)->off < (size_t)(n)) return E_TRUNCATED; \
    } while (0)

static inline int u32(Cursor *c, uint32_t *out) {
    NEED(c, 4);
    *out = rd32(c->p + c->off);
    c->off += 4;
    return OK;
}

/* A length-prefixed element: checks the length and returns a cursor over it. */
static inline int sub(Cursor *c, uint32_t length, Cursor *inner) {
    if ((size_t)length > c->end - c->off) return E_LENGTH_OVERRUN;
    inner->p = c->p;
    inner->off = c->off;
    inner->end = c->off + length;
    c->off += length;
    return OK;
}

static inline int count(Cursor *c, uint32_t item_size, uint32_t *out) {
    int rc = u32(c, out);
    if (rc) return rc;
    if ((uint64_t)*out * item_size > (uint64_t)(c->end - c->off)) return E_COUNT_OVERRUN;
    return OK;
}

static inline int skip(Cursor *c, size_t n) {
    NEED(c, n);
    c->off += n;
    return OK;
}

/* XDR opaque/string: length, bytes, padding (skipped when present). */
static int opaque(Cursor *c, const uint8_t **data, uint32_t *length) {
    int rc = u32(c, length);
    if (rc) return rc;
    if ((size_t)*length > c->end - c->off) return E_LENGTH_OVERRUN;
    *data = c->p + c->off;
    size_t padded = ((size_t)*length + 3) & ~(size_t)3;
    c->off = (c->end - c->off < padded) ? c->end : c->off + padded;
    return OK;
}

static int address(Cursor *c, int allow_unknown, uint32_t *type, const uint8_t **addr) {
    int rc = u32(c, type);
    if (rc) return rc;
    if (*type == 1 || *type == 2) {
        size_t size = *type == 1 ? 4 : 16;
        NEED(c, size);
        *addr = c->p + c->off;
        c->off += size;
        return OK;
    }
    if (*type == 0 && allow_unknown) return OK;
    return E_BAD_ADDRESS_TYPE;
}

/* What the sampled packet gives the fast path. */
typedef struct {
    int family; /* 0 none, 4, 6 */
    const uint8_t *dst;
    uint32_t frame_length;
    /* next hops of the last extended router / gateway record (NULL: none, or address type 0) */
    uint32_t router_type, gateway_type;
    const uint8_t *router_hop, *gateway_hop;
} PacketDst;

static int ip_dst(const uint8_t *h, size_t len, size_t off, int version, PacketDst *out) {
    if (version == 4) {
        if (len < off + 20 || (h[off] >> 4) != 4) return 0;
        out->family = 4;
        out->dst = h + off + 16;
        return 1;
    }
    if (len < off + 40 || (h[off] >> 4) != 6) return 0;
    out->family = 6;
    out->dst = h + off + 24;
    return 1;
}

static int header_dst(uint32_t header_protocol, const uint8_t *h, size_t len, PacketDst *out) {
    if (header_protocol == 11) return ip_dst(h, len, 0, 4, out);
    if (header_protocol == 12) return ip_dst(h, len, 0, 6, out);
    if (header_protocol != 1 || len < 14) return 0;
    uint32_t ethertype = ((uint32_t)h[12] << 8) | h[13];
    size_t off = 14;
    while ((ethertype == 0x8100 || ethertype == 0x88A8 || ethertype == 0x9100) && off + 4 <= len) {
        ethertype = ((uint32_t)h[off + 2] << 8) | h[off + 3];
        off += 4;
    }
    if (ethertype == 0x0800) return ip_dst(h, len, off, 4, out);
    if (ethertype == 0x86DD) return ip_dst(h, len, off, 6, out);
    return 0;
}

/* One flow/discard record; fills `found` with the first destination address seen. */
static int flow_record(uint32_t format, Cursor *r, PacketDst *found) {
    int rc;
    uint32_t v, type;
    const uint8_t *addr;
    switch (format) {
    case 1: { /* raw packet header */
        uint32_t header_protocol, frame_length, header_length;
        const uint8_t *header;
        NEED(r, 12);
        header_protocol = rd32(r->p + r->off);
        frame_length = rd32(r->p + r->off + 4);
        r->off += 12;
        if ((rc = opaque(r, &header, &header_length))) return rc;
        if (!found->family && header_dst(header_protocol, header, header_length, found))
            found->frame_length = frame_length;
        return OK;
    }
    case 2: /* ethernet frame data */
        return skip(r, 24);
    case 3: /* sampled IPv4 */
    case 4: { /* sampled IPv6 */
        size_t size = format == 3 ? 4 : 16;
        NEED(r, 8 + 2 * size + 16);
        if (!found->family) {
            found->family = format == 3 ? 4 : 6;
            found->frame_length = rd32(r->p + r->off);
            found->dst = r->p + r->off + 8 + size;
        }
        r->off += 8 + 2 * size + 16;
        return OK;
    }
    case 1001: /* extended switch */
        return skip(r, 16);
    case 1002: /* extended router */
        if ((rc = address(r, 1, &type, &addr))) return rc;
        found->router_type = type;
        found->router_hop = type ? addr : NULL;
        return skip(r, 8);
    case 1003: { /* extended gateway */
        uint32_t segments, length, communities;
        if ((rc = address(r, 1, &type, &addr))) return rc;
        found->gateway_type = type;
        found->gateway_hop = type ? addr : NULL;
        if ((rc = skip(r, 12))) return rc;
        if ((rc = count(r, 8, &segments))) return rc;
        for (uint32_t s = 0; s < segments; s++) {
            if ((rc = u32(r, &v))) return rc;
            if ((rc = count(r, 4, &length))) return rc;
            r->off += (size_t)length * 4; /* fits: checked by count() */
        }
        if ((rc = count(r, 4, &communities))) return rc;
        r->off += (size_t)communities * 4;
        return skip(r, 4);
    }
    case 1036: /* egress queue */
        return skip(r, 4);
    case 1037: { /* extended ACL */
        const uint8_t *name;
        if ((rc = u32(r, &v))) return rc;
        if ((rc = opaque(r, &name, &v))) return rc;
        return skip(r, 4);
    }
    case 1038: { /* extended function */
        const uint8_t *symbol;
        return opaque(r, &symbol, &v);
    }
    default:
        return OK;
    }
}

static int walk_records(Cursor *body, PacketDst *found) {
    uint32_t n, format, length;
    int rc;
    if ((rc = count(body, 8, &n))) return rc;
    for (uint32_t i = 0; i < n; i++) {
        Cursor record;
        if ((rc = u32(body, &format))) return rc;
        if ((rc = u32(body, &length))) return rc;
        if ((rc = sub(body, length, &record))) return rc;
        if (found && (rc = flow_record(format, &record, found))) return rc;
    }
    return OK;
}

static int push_pending(Decoder *d, size_t *n_pending, uint32_t type, uint32_t index, uint32_t drops) {
    if (*n_pending == d->pending_cap) {
        size_t cap = d->pending_cap ? d->pending_cap * 2 : 64;
        PendingDrops *p = PyMem_Realloc(d->pending, cap * sizeof(PendingDrops));
        if (!p) {
            PyErr_NoMemory();
            return -1;
        }
        d->pending = p;
        d->pending_cap = cap;
    }
    d->pending[*n_pending].source_type = type;
    d->pending[*n_pending].source_index = index;
    d->pending[*n_pending].drops = drops;
    (*n_pending)++;
    return 0;
}

typedef struct {
    uint64_t flow, counter, non_ip;
    size_t pending, hops;
} DatagramTally;

static int all_zero(const uint8_t *addr, size_t size) {
    for (size_t i = 0; i < size; i++)
        if (addr[i]) return 0;
    return 1;
}

/* The sample's next hop: the gateway's (BGP) if it names one, else the router's; 0 if none. */
static inline uint32_t pick_hop(const PacketDst *found, const uint8_t **addr) {
    if (found->gateway_hop && !all_zero(found->gateway_hop, found->gateway_type == 1 ? 4 : 16)) {
        *addr = found->gateway_hop;
        return found->gateway_type;
    }
    if (found->router_hop && !all_zero(found->router_hop, found->router_type == 1 ? 4 : 16)) {
        *addr = found->router_hop;
        return found->router_type;
    }
    return 0;
}

static int push_hop(Decoder *d, DatagramTally *tally, size_t row, int v6_row, uint32_t type, const uint8_t *addr) {
    if (tally->hops == d->hops_cap) {
        size_t cap = d->hops_cap ? d->hops_cap * 2 : 64;
        PendingHop *h = PyMem_Realloc(d->hops, cap * sizeof(PendingHop));
        if (!h) {
            PyErr_NoMemory();
            return -1;
        }
        d->hops = h;
        d->hops_cap = cap;
    }
    PendingHop *h = &d->hops[tally->hops++];
    h->row = row;
    h->v6_row = (uint8_t)v6_row;
    h->type = (uint8_t)type;
    memset(h->addr, 0, sizeof h->addr);
    memcpy(h->addr, addr, type == 1 ? 4 : 16);
    return 0;
}

/* Rows are appended with agent index 0 and next hop -1, patched once the datagram is known to be
 * valid. input_if is the ingress ifIndex (0: unknown, not a single interface, or the agent). */
static int push_row(Decoder *d, DatagramTally *tally, const PacketDst *found, uint32_t rate, uint32_t input_if) {
    double bytes = (double)found->frame_length * (double)rate;
    double packets = (double)rate;
    uint32_t zero = 0;
    int32_t no_hop = -1;
    const uint8_t *hop = NULL;
    uint32_t hop_type = pick_hop(found, &hop);
    if (found->family == 4) {
        uint32_t dst = rd32(found->dst);
        size_t row = d->v4_agent.len / 4;
        if (column_push(&d->v4_agent, &zero, 4) || column_push(&d->v4_dst, &dst, 4) ||
            column_push(&d->v4_bytes, &bytes, 8) || column_push(&d->v4_packets, &packets, 8) ||
            column_push(&d->v4_in, &input_if, 4) || column_push(&d->v4_hop, &no_hop, 4))
            return -1;
        if (hop_type && push_hop(d, tally, row, 0, hop_type, hop) < 0) return -1;
    } else {
        uint64_t hi = ((uint64_t)rd32(found->dst) << 32) | rd32(found->dst + 4);
        uint64_t lo = ((uint64_t)rd32(found->dst + 8) << 32) | rd32(found->dst + 12);
        size_t row = d->v6_agent.len / 4;
        if (column_push(&d->v6_agent, &zero, 4) || column_push(&d->v6_hi, &hi, 8) ||
            column_push(&d->v6_lo, &lo, 8) || column_push(&d->v6_bytes, &bytes, 8) ||
            column_push(&d->v6_packets, &packets, 8) || column_push(&d->v6_in, &input_if, 4) ||
            column_push(&d->v6_hop, &no_hop, 4))
            return -1;
        if (hop_type && push_hop(d, tally, row, 1, hop_type, hop) < 0) return -1;
    }
    return 0;
}

/* Walks the samples; returns a reason code, or -1 with a Python error set. */
static int walk_samples(Decoder *d, Cursor *c, DatagramTally *tally) {
    uint32_t n_samples, format, length;
    int rc;
    if ((rc = count(c, 8, &n_samples))) return rc;
    for (uint32_t i = 0; i < n_samples; i++) {
        Cursor body;
        if ((rc = u32(c, &format))) return rc;
        if ((rc = u32(c, &length))) return rc;
        if (i == n_samples - 1 && (size_t)length != c->end - c->off)
            length = (uint32_t)(c->end - c->off); /* tolerated, as in sflow.py */
        if ((rc = sub(c, length, &body))) return rc;
        if (format == 1 || format == 3) {
            uint32_t type, index, rate, drops, in_format, in_value;
            const uint8_t *q = body.p + body.off;
            if (format == 1) {
                NEED(&body, 32);
                type = rd32(q + 4) >> 24;
                index = rd32(q + 4) & 0xFFFFFF;
                rate = rd32(q + 8);
                drops = rd32(q + 16);
                in_format = rd32(q + 20) >> 30;
                in_value = rd32(q + 20) & 0x3FFFFFFF;
                body.off += 28;
            } else {
                NEED(&body, 44);
                type = rd32(q + 4);
                index = rd32(q + 8);
                rate = rd32(q + 12);
                drops = rd32(q + 20);
                in_format = rd32(q + 24);
                in_value = rd32(q + 28);
                body.off += 40;
            }
            uint32_t input_if = (in_format == 0 && in_value != INTERFACE_AGENT) ? in_value : 0;
            PacketDst found = {0, NULL, 0, 0, 0, NULL, NULL};
            if ((rc = walk_records(&body, &found))) return rc;
            tally->flow++;
            if (push_pending(d, &tally->pending, type, index, drops) < 0) return -1;
            if (!found.family) {
                tally->non_ip++;
            } else if (push_row(d, tally, &found, rate, input_if) < 0) {
                return -1;
            }
        } else if (format == 2 || format == 4) {
            size_t fixed = format == 2 ? 12 : 16;
            NEED(&body, fixed);
            body.off += fixed - 4;
            if ((rc = walk_records(&body, NULL))) return rc;
            tally->counter++;
        } else if (format == 5) {
            PacketDst ignored = {0, NULL, 0, 0, 0, NULL, NULL};
            NEED(&body, 32);
            body.off += 28;
            if ((rc = walk_records(&body, &ignored))) return rc;
        }
    }
    return OK;
}

/* ---------- agents and sources ---------- */

static PyObject *format_address(uint32_t type, const uint8_t *addr) {
    char text[INET6_ADDRSTRLEN];
    if (!inet_ntop(type == 1 ? AF_INET : AF_INET6, addr, text, sizeof text)) {
        PyErr_SetString(PyExc_ValueError, "inet_ntop failed");
        return NULL;
    }
    return PyUnicode_FromString(text);
}

/* Persistent agent id for an address; -1 with a Python error set. */
static int64_t agent_id(Decoder *d, uint32_t type, const uint8_t *addr) {
    uint8_t key[17];
    size_t size = type == 1 ? 4 : 16;
    key[0] = (uint8_t)type;
    memcpy(key + 1, addr, size);
    PyObject *k = PyBytes_FromStringAndSize((const char *)key, (Py_ssize_t)(1 + size));
    if (!k) return -1;
    PyObject *found = PyDict_GetItemWithError(d->agent_ids, k);
    if (found) {
        Py_DECREF(k);
        return PyLong_AsLongLong(found);
    }
    if (PyErr_Occurred()) {
        Py_DECREF(k);
        return -1;
    }
    int64_t id = PyList_GET_SIZE(d->agent_names);
    if ((size_t)id >= d->agents_cap) {
        size_t cap = d->agents_cap ? d->agents_cap * 2 : 16;
        AgentState *a = PyMem_Realloc(d->agents, cap * sizeof(AgentState));
        if (!a) {
            Py_DECREF(k);
            PyErr_NoMemory();
            return -1;
        }
        d->agents = a;
        d->agents_cap = cap;
    }
    PyObject *name = format_address(type, addr);
    PyObject *value = PyLong_FromLongLong(id);
    if (!name || !value || PyList_Append(d->agent_names, name) < 0 || PyDict_SetItem(d->agent_ids, k, value) < 0) {
        Py_XDECREF(name);
        Py_XDECREF(value);
        Py_DECREF(k);
        return -1;
    }
    Py_DECREF(name);
    Py_DECREF(value);
    Py_DECREF(k);
    d->agents[id].batch_index = -1;
    d->agents[id].lost = 0;
    d->agents[id].drops = 0;
    d->agents[id].type = type;
    memset(d->agents[id].addr, 0, 16);
    memcpy(d->agents[id].addr, addr, size);
    d->agents[id].streams = 0;
    d->agents[id].ring_next = 0;
    return id;
}

static size_t source_key(uint8_t key[24], uint32_t type, const uint8_t *addr, uint32_t sub_agent) {
    size_t size = type == 1 ? 4 : 16;
    key[0] = (uint8_t)type;
    memcpy(key + 1, addr, size);
    memcpy(key + 1 + size, &sub_agent, 4);
    return 1 + size + 4;
}

/* Forget the agent's oldest stream (its key, and its drop baselines as stale); returns its slot
 * for reuse, -1 with a Python error set. */
static int64_t evict_oldest_stream(Decoder *d, AgentState *agent) {
    uint32_t slot = agent->ring[agent->ring_next];
    agent->ring_next = (agent->ring_next + 1) % MAX_SUB_AGENTS;
    SourceState *s = &d->sources[slot];
    uint8_t key[24];
    size_t key_len = source_key(key, agent->type, agent->addr, s->sub_agent);
    PyObject *k = PyBytes_FromStringAndSize((const char *)key, (Py_ssize_t)key_len);
    if (!k) return -1;
    int rc = PyDict_DelItem(d->source_ids, k);
    Py_DECREF(k);
    if (rc < 0) return -1;
    d->drop_table.stale += s->drop_entries;
    s->drop_entries = 0;
    s->generation++;
    d->sub_agents_evicted++;
    return slot;
}

/* Persistent source slot for (agent, sub-agent); *is_new = 1 on first sight. */
static int64_t source_slot(Decoder *d, uint32_t type, const uint8_t *addr, uint32_t sub_agent, int *is_new) {
    uint8_t key[24];
    size_t key_len = source_key(key, type, addr, sub_agent);
    *is_new = 0;
    if (d->cached_source >= 0 && key_len == d->cached_key_len && !memcmp(key, d->cached_key, key_len))
        return d->cached_source;
    PyObject *k = PyBytes_FromStringAndSize((const char *)key, (Py_ssize_t)key_len);
    if (!k) return -1;
    PyObject *found = PyDict_GetItemWithError(d->source_ids, k);
    int64_t slot;
    if (found) {
        slot = PyLong_AsLongLong(found);
    } else if (PyErr_Occurred()) {
        Py_DECREF(k);
        return -1;
    } else {
        int64_t agent = agent_id(d, type, addr);
        if (agent < 0) {
            Py_DECREF(k);
            return -1;
        }
        AgentState *a = &d->agents[agent];
        if (a->streams == MAX_SUB_AGENTS) {
            slot = evict_oldest_stream(d, a);
            if (slot < 0) {
                Py_DECREF(k);
                return -1;
            }
        } else {
            if (d->sources_len == d->sources_cap) {
                size_t cap = d->sources_cap ? d->sources_cap * 2 : 16;
                SourceState *grown = PyMem_Realloc(d->sources, cap * sizeof(SourceState));
                if (!grown) {
                    Py_DECREF(k);
                    PyErr_NoMemory();
                    return -1;
                }
                d->sources = grown;
                d->sources_cap = cap;
            }
            slot = (int64_t)d->sources_len++;
            d->sources[slot].generation = 0;
            a->ring[a->streams++] = (uint32_t)slot;
        }
        SourceState *state = &d->sources[slot];
        state->agent_id = (uint32_t)agent;
        state->sub_agent = sub_agent;
        state->drop_entries = 0;
        PyObject *value = PyLong_FromLongLong(slot);
        if (!value || PyDict_SetItem(d->source_ids, k, value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(k);
            return -1;
        }
        Py_DECREF(value);
        *is_new = 1;
    }
    Py_DECREF(k);
    memcpy(d->cached_key, key, key_len);
    d->cached_key_len = key_len;
    d->cached_source = slot;
    return slot;
}

static int count_malformed(Decoder *d, int reason, PyObject *agent) {
    PyObject *key = Py_BuildValue("(sO)", REASON_NAMES[reason], agent);
    if (!key) return -1;
    PyObject *old = PyDict_GetItemWithError(d->malformed, key);
    if (!old && PyErr_Occurred()) {
        Py_DECREF(key);
        return -1;
    }
    PyObject *value = PyLong_FromLongLong(old ? PyLong_AsLongLong(old) + 1 : 1);
    int rc = value ? PyDict_SetItem(d->malformed, key, value) : -1;
    Py_XDECREF(value);
    Py_DECREF(key);
    return rc;
}

/* ---------- feeding ---------- */

typedef struct {
    size_t v4_rows, v6_rows;
} Marks;

static void rollback(Decoder *d, const Marks *m) {
    d->v4_agent.len = m->v4_rows * 4;
    d->v4_dst.len = m->v4_rows * 4;
    d->v4_bytes.len = m->v4_rows * 8;
    d->v4_packets.len = m->v4_rows * 8;
    d->v4_in.len = m->v4_rows * 4;
    d->v4_hop.len = m->v4_rows * 4;
    d->v6_agent.len = m->v6_rows * 4;
    d->v6_in.len = m->v6_rows * 4;
    d->v6_hop.len = m->v6_rows * 4;
    d->v6_hi.len = m->v6_rows * 8;
    d->v6_lo.len = m->v6_rows * 8;
    d->v6_bytes.len = m->v6_rows * 8;
    d->v6_packets.len = m->v6_rows * 8;
}

/* The batch index of a next-hop address, named on first sight; -1 with a Python error set. */
static int32_t hop_id(Decoder *d, uint8_t type, const uint8_t *addr) {
    HopTable *t = &d->hop_table;
    if (!t->entries || (t->used + 1) * 2 > t->mask + 1) {
        size_t capacity = t->entries ? (t->mask + 1) * 2 : 64;
        HopEntry *entries = PyMem_Calloc(capacity, sizeof(HopEntry));
        if (!entries) {
            PyErr_NoMemory();
            return -1;
        }
        if (t->entries) {
            for (size_t i = 0; i <= t->mask; i++) {
                HopEntry *e = &t->entries[i];
                if (!e->index_plus_one) continue;
                uint64_t a, b;
                memcpy(&a, e->addr, 8);
                memcpy(&b, e->addr + 8, 8);
                size_t j = drop_hash(a ^ e->type, b) & (capacity - 1);
                while (entries[j].index_plus_one) j = (j + 1) & (capacity - 1);
                entries[j] = *e;
            }
            PyMem_Free(t->entries);
        }
        t->entries = entries;
        t->mask = capacity - 1;
    }
    uint64_t a, b;
    memcpy(&a, addr, 8);
    memcpy(&b, addr + 8, 8);
    size_t i = drop_hash(a ^ type, b) & t->mask;
    while (t->entries[i].index_plus_one) {
        HopEntry *e = &t->entries[i];
        if (e->type == type && !memcmp(e->addr, addr, 16)) return (int32_t)(e->index_plus_one - 1);
        i = (i + 1) & t->mask;
    }
    PyObject *name = format_address(type, addr);
    if (!name) return -1;
    Py_ssize_t index = PyList_GET_SIZE(d->batch_hops);
    int rc = PyList_Append(d->batch_hops, name);
    Py_DECREF(name);
    if (rc < 0) return -1;
    t->entries[i].index_plus_one = (uint32_t)index + 1;
    t->entries[i].type = type;
    memcpy(t->entries[i].addr, addr, 16);
    t->used++;
    return (int32_t)index;
}

/* Drop the entries of evicted streams (their generation is not their slot's any more). */
static int drop_table_compact(Decoder *d) {
    DropTable *t = &d->drop_table;
    size_t capacity = t->mask + 1;
    DropEntry *entries = PyMem_Calloc(capacity, sizeof(DropEntry));
    if (!entries) {
        PyErr_NoMemory();
        return -1;
    }
    size_t used = 0;
    for (size_t i = 0; i < capacity; i++) {
        DropEntry *e = &t->entries[i];
        if (!e->slot_plus_one) continue;
        uint64_t key = e->slot_plus_one - 1;
        if (d->sources[key & 0xFFFFFFFFu].generation != (uint32_t)(key >> 32)) continue;
        size_t j = drop_hash(e->slot_plus_one, e->data_source) & t->mask;
        while (entries[j].slot_plus_one) j = (j + 1) & t->mask;
        entries[j] = *e;
        used++;
    }
    PyMem_Free(t->entries);
    t->entries = entries;
    t->used = used;
    t->stale = 0;
    return 0;
}

static int commit(Decoder *d, int64_t slot, int slot_is_new, uint32_t sequence, uint32_t uptime,
                  const Marks *m, const DatagramTally *tally) {
    SourceState *s = &d->sources[slot];
    AgentState *agent = &d->agents[s->agent_id];
    if (agent->batch_index < 0) {
        agent->batch_index = PyList_GET_SIZE(d->batch_agents);
        if (PyList_Append(d->batch_agents, PyList_GET_ITEM(d->agent_names, s->agent_id)) < 0) return -1;
    }
    uint32_t index = (uint32_t)agent->batch_index;
    uint32_t *rows4 = (uint32_t *)d->v4_agent.data;
    for (size_t i = m->v4_rows; i < d->v4_agent.len / 4; i++) rows4[i] = index;
    uint32_t *rows6 = (uint32_t *)d->v6_agent.data;
    for (size_t i = m->v6_rows; i < d->v6_agent.len / 4; i++) rows6[i] = index;
    for (size_t i = 0; i < tally->hops; i++) {
        const PendingHop *h = &d->hops[i];
        int32_t id = hop_id(d, h->type, h->addr);
        if (id < 0) return -1;
        int32_t *column = (int32_t *)(h->v6_row ? d->v6_hop.data : d->v4_hop.data);
        column[h->row] = id;
    }
    d->flow_samples += tally->flow;
    d->counter_samples += tally->counter;
    d->non_ip_samples += tally->non_ip;

    if (tally->pending && d->drop_table.stale * 2 > d->drop_table.used && drop_table_compact(d) < 0) return -1;
    uint64_t drop_key = ((uint64_t)s->generation << 32) | (uint64_t)slot;
    for (size_t i = 0; i < tally->pending; i++) {
        const PendingDrops *p = &d->pending[i];
        int is_new;
        DropEntry *e = drop_table_get(&d->drop_table, drop_key, ((uint64_t)p->source_type << 32) | p->source_index,
                                      s->drop_entries < MAX_DATA_SOURCES, &is_new);
        if (is_new < 0) return -1;
        if (!e) {
            d->data_sources_refused++;
            continue;
        }
        if (is_new) s->drop_entries++;
        if (!is_new) {
            uint32_t step = p->drops - e->drops;
            if (step < HALF_RANGE) agent->drops += step;
        }
        e->drops = p->drops;
    }

    if (slot_is_new) {
        s->last_sequence = sequence;
        s->last_uptime = uptime;
    } else {
        uint32_t step = sequence - s->last_sequence;
        if (step != 0 && step < HALF_RANGE) {
            agent->lost += step - 1;
            s->last_sequence = sequence;
            s->last_uptime = uptime;
        } else if ((uint64_t)uptime + RESTART_UPTIME_STEP_MS < (uint64_t)s->last_uptime) {
            s->last_sequence = sequence;
            s->last_uptime = uptime;
        }
    }
    return 0;
}

static int feed_one(Decoder *d, const uint8_t *data, size_t len, PyObject *exporter) {
    Cursor c = {data, 0, len};
    uint32_t version, type = 0, sub_agent, sequence, uptime;
    const uint8_t *addr = NULL;
    int rc;
    int header_ok = 0;
    Marks marks = {d->v4_agent.len / 4, d->v6_agent.len / 4};
    DatagramTally tally = {0, 0, 0, 0, 0};
    d->datagrams++;

    if ((rc = u32(&c, &version))) goto malformed;
    if (version != 5) {
        rc = E_BAD_VERSION;
        goto malformed;
    }
    if ((rc = address(&c, 0, &type, &addr))) goto malformed;
    header_ok = 1;
    if ((rc = u32(&c, &sub_agent)) || (rc = u32(&c, &sequence)) || (rc = u32(&c, &uptime))) goto malformed;
    rc = walk_samples(d, &c, &tally);
    if (rc < 0) {
        rollback(d, &marks);
        return -1;
    }
    if (rc) goto malformed;

    int is_new;
    int64_t slot = source_slot(d, type, addr, sub_agent, &is_new);
    if (slot < 0 || commit(d, slot, is_new, sequence, uptime, &marks, &tally) < 0) {
        rollback(d, &marks);
        return -1;
    }
    return 0;

malformed:
    rollback(d, &marks);
    if (header_ok) {
        int64_t id = agent_id(d, type, addr);
        if (id < 0) return -1;
        return count_malformed(d, rc, PyList_GET_ITEM(d->agent_names, id));
    }
    return count_malformed(d, rc, exporter);
}

static int feed_object(Decoder *d, PyObject *datagram, PyObject *exporter) {
    if (!PyUnicode_Check(exporter)) {
        PyErr_SetString(PyExc_TypeError, "exporter must be a str");
        return -1;
    }
    if (PyBytes_Check(datagram))
        return feed_one(d, (const uint8_t *)PyBytes_AS_STRING(datagram), (size_t)PyBytes_GET_SIZE(datagram), exporter);
    Py_buffer view;
    if (PyObject_GetBuffer(datagram, &view, PyBUF_SIMPLE) < 0) return -1;
    int rc = feed_one(d, (const uint8_t *)view.buf, (size_t)view.len, exporter);
    PyBuffer_Release(&view);
    return rc;
}

static PyObject *Decoder_feed(Decoder *d, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "feed(datagram, exporter)");
        return NULL;
    }
    if (feed_object(d, args[0], args[1]) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Decoder_feed_many(Decoder *d, PyObject *items) {
    PyObject *seq = PySequence_Fast(items, "feed_many expects a list of (datagram, exporter)");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **entries = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = entries[i];
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_TypeError, "feed_many expects (datagram, exporter) tuples");
            return NULL;
        }
        if (feed_object(d, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1)) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

static PyObject *per_agent_counts(Decoder *d, int lost) {
    PyObject *out = PyDict_New();
    if (!out) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(d->agent_names);
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t *value = lost ? &d->agents[i].lost : &d->agents[i].drops;
        if (!*value) continue;
        PyObject *v = PyLong_FromUnsignedLongLong(*value);
        if (!v || PyDict_SetItem(out, PyList_GET_ITEM(d->agent_names, i), v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(v);
        *value = 0;
    }
    return out;
}

/* take() -> (agents, v4 agent/dst/bytes/packets, v6 agent/hi/lo/bytes/packets (bytearrays),
 *            datagrams, flow samples, counter samples, non-IP samples, malformed, lost, drops,
 *            next hops, v4 input_if/next hop, v6 input_if/next hop (bytearrays)) */
static PyObject *Decoder_take(Decoder *d, PyObject *Py_UNUSED(ignored)) {
    PyObject *lost = per_agent_counts(d, 1);
    PyObject *drops = per_agent_counts(d, 0);
    PyObject *new_agents = PyList_New(0);
    PyObject *new_hops = PyList_New(0);
    PyObject *new_malformed = PyDict_New();
    PyObject *limited = Py_BuildValue("{sKsK}", "sflow_sub_agent_evicted", (unsigned long long)d->sub_agents_evicted,
                                      "sflow_data_source_refused", (unsigned long long)d->data_sources_refused);
    if (!lost || !drops || !new_agents || !new_hops || !new_malformed || !limited) {
        Py_XDECREF(limited);
        Py_XDECREF(lost);
        Py_XDECREF(drops);
        Py_XDECREF(new_agents);
        Py_XDECREF(new_hops);
        Py_XDECREF(new_malformed);
        return NULL;
    }
    HopTable *hop_table = &d->hop_table;
    if (hop_table->entries && hop_table->mask >= 4096) { /* a batch of many next hops: don't keep its size */
        PyMem_Free(hop_table->entries);
        hop_table->entries = NULL;
        hop_table->mask = 0;
    } else if (hop_table->entries) {
        memset(hop_table->entries, 0, (hop_table->mask + 1) * sizeof(HopEntry));
    }
    hop_table->used = 0;
    Py_ssize_t n = PyList_GET_SIZE(d->agent_names);
    for (Py_ssize_t i = 0; i < n; i++) d->agents[i].batch_index = -1;
    PyObject *result = Py_BuildValue(
        "(NNNNNNNNNNKKKKNNNNNNNNN)", d->batch_agents, column_take(&d->v4_agent), column_take(&d->v4_dst),
        column_take(&d->v4_bytes), column_take(&d->v4_packets), column_take(&d->v6_agent), column_take(&d->v6_hi),
        column_take(&d->v6_lo), column_take(&d->v6_bytes), column_take(&d->v6_packets),
        (unsigned long long)d->datagrams, (unsigned long long)d->flow_samples,
        (unsigned long long)d->counter_samples, (unsigned long long)d->non_ip_samples, d->malformed, lost, drops,
        d->batch_hops, column_take(&d->v4_in), column_take(&d->v4_hop), column_take(&d->v6_in),
        column_take(&d->v6_hop), limited);
    d->batch_agents = new_agents;
    d->batch_hops = new_hops;
    d->malformed = new_malformed;
    d->datagrams = d->flow_samples = d->counter_samples = d->non_ip_samples = 0;
    d->sub_agents_evicted = d->data_sources_refused = 0;
    return result;
}

/* ---------- type boilerplate ---------- */

static void Decoder_dealloc(Decoder *d) {
    Py_XDECREF(d->agent_ids);
    Py_XDECREF(d->agent_names);
    Py_XDECREF(d->source_ids);
    Py_XDECREF(d->batch_agents);
    Py_XDECREF(d->batch_hops);
    Py_XDECREF(d->malformed);
    PyMem_Free(d->hop_table.entries);
    PyMem_Free(d->hops);
    PyMem_Free(d->agents);
    PyMem_Free(d->sources);
    PyMem_Free(d->drop_table.entries);
    PyMem_Free(d->pending);
    Column *columns[] = {&d->v4_agent, &d->v4_dst,   &d->v4_bytes, &d->v4_packets, &d->v4_in,
                         &d->v4_hop,   &d->v6_agent, &d->v6_hi,    &d->v6_lo,      &d->v6_bytes,
                         &d->v6_packets, &d->v6_in,  &d->v6_hop};
    for (size_t i = 0; i < sizeof columns / sizeof columns[0]; i++) PyMem_Free(columns[i]->data);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

static PyObject *Decoder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) || (kwargs && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "Decoder() takes no arguments");
        return NULL;
    }
    Decoder *d = (Decoder *)type->tp_alloc(type, 0); /* zero-filled */
    if (!d) return NULL;
    d->agent_ids = PyDict_New();
    d->agent_names = PyList_New(0);
    d->source_ids = PyDict_New();
    d->batch_agents = PyList_New(0);
    d->batch_hops = PyList_New(0);
    d->malformed = PyDict_New();
    d->cached_source = -1;
    if (!d->agent_ids || !d->agent_names || !d->source_ids || !d->batch_agents || !d->batch_hops || !d->malformed) {
        Py_DECREF(d);
        return NULL;
    }
    return (PyObject *)d;
}

/* state_sizes() -> (agents, streams, drop baselines, drop table capacity): for the bounds' tests */
static PyObject *Decoder_state_sizes(Decoder *d, PyObject *Py_UNUSED(ignored)) {
    DropTable *t = &d->drop_table;
    return Py_BuildValue("(nnnn)", PyList_GET_SIZE(d->agent_names), (Py_ssize_t)d->sources_len,
                         (Py_ssize_t)(t->used - t->stale), (Py_ssize_t)(t->entries ? t->mask + 1 : 0));
}

static PyMethodDef Decoder_methods[] = {
    {"state_sizes", (PyCFunction)Decoder_state_sizes, METH_NOARGS, "state_sizes() -> (agents, streams, drops, capacity)"},
    {"feed", (PyCFunction)(void (*)(void))Decoder_feed, METH_FASTCALL, "feed(datagram, exporter)"},
    {"feed_many", (PyCFunction)Decoder_feed_many, METH_O, "feed_many([(datagram, exporter), ...])"},
    {"take", (PyCFunction)Decoder_take, METH_NOARGS, "take() -> raw batch tuple"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "topfib.collector.sflow._sflow_fast.Decoder",
    .tp_basicsize = sizeof(Decoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "sFlow v5 fast path: accumulate flow samples of many datagrams",
    .tp_new = Decoder_new,
    .tp_dealloc = (destructor)Decoder_dealloc,
    .tp_methods = Decoder_methods,
};

/* ---------- the flow gate's common case (see collector/accounting/flow_gate.py) ---------- */

/* Does the datagram start with one of the heads (bytes) in the tuple? */
static int starts_with_any(const uint8_t *data, size_t len, PyObject *heads) {
    Py_ssize_t n = PyTuple_GET_SIZE(heads);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *head = PyTuple_GET_ITEM(heads, i);
        if (!PyBytes_Check(head)) continue;
        size_t size = (size_t)PyBytes_GET_SIZE(head);
        if (len >= size && !memcmp(data, PyBytes_AS_STRING(head), size)) return 1;
    }
    return 0;
}

/* screen(pairs, heads_by_source) -> (admitted, others): a pair is admitted when its source is a key
 * of heads_by_source (str -> tuple of bytes) and its datagram starts with one of those heads; the
 * others, in order, are left for the gate's full rule. */
static PyObject *screen(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "screen(pairs, heads_by_source: dict)");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[0], "screen expects a list of (datagram, source)");
    if (!seq) return NULL;
    PyObject *admitted = PyList_New(0), *others = PyList_New(0);
    if (!admitted || !others) goto error;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    PyObject *last_source = NULL, *heads = NULL; /* borrowed: consecutive pairs share a source */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = items[i];
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "screen expects (datagram, source) tuples");
            goto error;
        }
        PyObject *data = PyTuple_GET_ITEM(pair, 0), *source = PyTuple_GET_ITEM(pair, 1);
        if (!PyBytes_Check(data)) { /* another buffer type: the gate's Python rule decides */
            if (PyList_Append(others, pair) < 0) goto error;
            continue;
        }
        if (source != last_source) {
            heads = PyDict_GetItemWithError(args[1], source);
            if (!heads && PyErr_Occurred()) goto error;
            last_source = source;
        }
        int ok = heads && PyTuple_Check(heads) &&
                 starts_with_any((const uint8_t *)PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data), heads);
        if (PyList_Append(ok ? admitted : others, pair) < 0) goto error;
    }
    Py_DECREF(seq);
    return Py_BuildValue("(NN)", admitted, others);

error:
    Py_DECREF(seq);
    Py_XDECREF(admitted);
    Py_XDECREF(others);
    return NULL;
}

#ifdef __linux__
/* The text of a socket address as collector/flow/udp_batch.py's _address gives it ("?": neither family). */
static PyObject *socket_address_text(const uint8_t *name, size_t size) {
    sa_family_t family;
    if (size < sizeof family) return PyUnicode_FromString("?");
    memcpy(&family, name, sizeof family);
    if (family == AF_INET && size >= sizeof(struct sockaddr_in))
        return format_address(1, name + offsetof(struct sockaddr_in, sin_addr));
    if (family == AF_INET6 && size >= sizeof(struct sockaddr_in6))
        return format_address(2, name + offsetof(struct sockaddr_in6, sin6_addr));
    return PyUnicode_FromString("?");
}

/* unpack_mmsg(headers, count, cache) -> (pairs, truncated): the (payload, source text) pairs of the
 * first ``count`` messages of a recvmmsg header array (a writable buffer of struct mmsghdr, laid out
 * by collector/flow/udp_batch.py), truncated ones skipped and counted; each msg_namelen is reset
 * for the next call. ``cache`` maps raw socket addresses (bytes) to their text (the caller bounds
 * it); consecutive messages from one source share its text object. */
static PyObject *unpack_mmsg(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "unpack_mmsg(headers, count, cache: dict)");
        return NULL;
    }
    Py_ssize_t count = PyLong_AsSsize_t(args[1]);
    if (count == -1 && PyErr_Occurred()) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0) return NULL;
    PyObject *pairs = NULL;
    if (count < 0 || (size_t)count > (size_t)view.len / sizeof(struct mmsghdr)) {
        PyErr_SetString(PyExc_ValueError, "unpack_mmsg: count exceeds the header array");
        goto error;
    }
    pairs = PyList_New(0);
    if (!pairs) goto error;
    struct mmsghdr *headers = (struct mmsghdr *)view.buf;
    long truncated = 0;
    PyObject *source = NULL; /* borrowed from the cache, which only grows during the call */
    const uint8_t *last_name = NULL;
    socklen_t last_size = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        struct msghdr *message = &headers[i].msg_hdr;
        socklen_t name_size = message->msg_namelen;
        message->msg_namelen = sizeof(struct sockaddr_in6); /* the kernel wrote the actual length */
        if (message->msg_flags & MSG_TRUNC) {
            truncated++;
            continue;
        }
        if (name_size > sizeof(struct sockaddr_in6)) name_size = sizeof(struct sockaddr_in6);
        const uint8_t *name = (const uint8_t *)message->msg_name;
        if (!source || name_size != last_size || memcmp(name, last_name, name_size) != 0) {
            PyObject *key = PyBytes_FromStringAndSize((const char *)name, name_size);
            if (!key) goto error;
            source = PyDict_GetItemWithError(args[2], key);
            if (!source) {
                if (PyErr_Occurred() || !(source = socket_address_text(name, name_size))) {
                    Py_DECREF(key);
                    goto error;
                }
                int failed = PyDict_SetItem(args[2], key, source);
                Py_DECREF(source); /* the cache holds it */
                if (failed < 0) {
                    Py_DECREF(key);
                    goto error;
                }
            }
            Py_DECREF(key);
            last_name = name;
            last_size = name_size;
        }
        size_t size = headers[i].msg_len;
        if (size > message->msg_iov[0].iov_len) size = message->msg_iov[0].iov_len;
        PyObject *payload = PyBytes_FromStringAndSize((const char *)message->msg_iov[0].iov_base, (Py_ssize_t)size);
        if (!payload) goto error;
        PyObject *pair = PyTuple_Pack(2, payload, source);
        Py_DECREF(payload);
        if (!pair || PyList_Append(pairs, pair) < 0) {
            Py_XDECREF(pair);
            goto error;
        }
        Py_DECREF(pair);
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(Nl)", pairs, truncated);

error:
    PyBuffer_Release(&view);
    Py_XDECREF(pairs);
    return NULL;
}
#endif

static PyMethodDef module_methods[] = {
    {"screen", (PyCFunction)(void (*)(void))screen, METH_FASTCALL, "screen(pairs, heads_by_source) -> (admitted, others)"},
#ifdef __linux__
    {"unpack_mmsg", (PyCFunction)(void (*)(void))unpack_mmsg, METH_FASTCALL,
     "unpack_mmsg(headers, count, cache) -> (pairs, truncated)"},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sflow_fast", "sFlow v5 fast path (C)", -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sflow_fast(void) {
    if (PyType_Ready(&DecoderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&DecoderType);
    if (PyModule_AddObject(m, "Decoder", (PyObject *)&DecoderType) < 0) {
        Py_DECREF(&DecoderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
