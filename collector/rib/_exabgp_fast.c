/*
 * ExaBGP JSON update lines → RouteUpdate events, in C (see collector/rib/exabgp_json.py).
 *
 * A direct scanner over the line's bytes: no JSON document is built. It accepts only a narrow,
 * well-formed subset of what the reference path accepts, and answers None for anything else
 * (escapes or non-ASCII in a string, duplicate keys it reads, floats or signs where it reads
 * numbers, other families, eor, state lines, deep nesting…): the Python paths then parse the line
 * and count whatever is wrong with it. So whatever it returns is exactly what the reference path
 * returns, and it never counts anything.
 *
 * Two passes: the first walks the whole line (the header keys it ignores go through a strict
 * generic skipper) and notes where "withdraw", "announce" and "attribute" are; the second
 * builds the events from those spans, withdraws first, as the Python paths do. Shared state
 * (the attribute and path caches, the interned strings) is the parser's own dicts, so one BgpPath
 * object per distinct (attribute set, next hop, peer, path-id) is shared with the Python fast
 * path. Every read is bounded by the end of the line.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ERR = -1, OK = 0, NO = 1, END = 2 }; /* NO: not ours (None); END: container closed */

#define MAX_DEPTH 32        /* nesting the generic skipper follows; deeper: not ours */
#define MAX_ASNS 1024       /* AS path length held on the stack; longer: not ours */
#define MAX_NEXT_HOPS 16    /* next hops per family tracked for duplicates; more: not ours */
#define HOP_SLOTS 8         /* recently seen next-hop strings reused */
#define IPV4_FAMILY 4       /* topfib.collector.common.prefixes.IPV4 */

static PyObject *FAMILY_V4, *FAMILY_V6, *ORIGIN_IGP, *ORIGIN_EGP, *ORIGIN_INCOMPLETE;
static PyObject *LOCAL_PREF_DEFAULT, *MED_DEFAULT, *V4_FAMILY_NUMBER, *EMPTY_TUPLE, *EMPTY_KEY;

/* ---------- the scanner over one line ---------- */

typedef struct {
    const char *p;
    const char *end;
} Cur;

typedef struct {
    const char *start; /* NULL: absent */
    const char *end;
} Span;

#define SAME(ptr, len, literal) ((len) == (Py_ssize_t)sizeof(literal) - 1 && memcmp((ptr), (literal), (size_t)(len)) == 0)

static inline int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

static inline void ws(Cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

/* Consumes `ch` after optional whitespace; 1 if it was there. */
static inline int expect(Cur *c, char ch) {
    ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A string with no escape, control or non-ASCII character; its contents are [*s, *s + *n). */
static int string(Cur *c, const char **s, Py_ssize_t *n) {
    ws(c);
    if (c->p >= c->end || *c->p != '"') return NO;
    const char *start = c->p + 1;
    const char *quote = memchr(start, '"', (size_t)(c->end - start));
    if (!quote) return NO;
    for (const char *p = start; p < quote; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch < 0x20 || ch == '\\' || ch >= 0x80) return NO; /* an escaped quote ends here too */
    }
    *s = start;
    *n = quote - start;
    c->p = quote + 1;
    return OK;
}

static int literal(Cur *c, const char *word, size_t len) {
    if ((size_t)(c->end - c->p) < len || memcmp(c->p, word, len) != 0) return NO;
    c->p += len;
    return OK;
}

#define MAX_INTEGER_DIGITS 19 /* json.loads refuses integers beyond sys.get_int_max_str_digits() (>= 640) */

/* A JSON number (RFC 8259 grammar) json.loads reads: an integer of at most MAX_INTEGER_DIGITS
 * digits (json refuses 4300 and more, by default), a fraction or exponent of any length. */
static int number(Cur *c) {
    const char *p = c->p, *e = c->end, *digits;
    if (p < e && *p == '-') p++;
    if (p >= e) return NO;
    digits = p;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < e && is_digit(*p)) p++;
    } else {
        return NO;
    }
    int integer = 1;
    if (p < e && *p == '.') {
        p++;
        if (p >= e || !is_digit(*p)) return NO;
        while (p < e && is_digit(*p)) p++;
        integer = 0;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || !is_digit(*p)) return NO;
        while (p < e && is_digit(*p)) p++;
        integer = 0;
    }
    if (integer && p - digits > MAX_INTEGER_DIGITS) return NO;
    c->p = p;
    return OK;
}

/* Before the next item of a container whose opening bracket was consumed: END past `close`,
 * OK past the ',' that separates it from the one before (none before the first), NO otherwise.
 * `count` starts at 0. */
static int next_item(Cur *c, int *count, char close) {
    ws(c);
    if (c->p >= c->end) return NO;
    if (*c->p == close) {
        c->p++;
        return END;
    }
    if (*count) {
        if (*c->p != ',') return NO;
        c->p++;
    }
    (*count)++;
    return OK;
}

/* Next member of an object whose '{' was consumed: OK with its key (and the ':' consumed),
 * END at '}', NO on anything else. `count` starts at 0. */
static int member(Cur *c, int *count, const char **key, Py_ssize_t *len) {
    int state = next_item(c, count, '}');
    if (state != OK) return state;
    if (string(c, key, len) != OK || !expect(c, ':')) return NO;
    return OK;
}

/* Next element of an array whose '[' was consumed: OK (positioned on it), END at ']', NO. */
static int element(Cur *c, int *count) {
    return next_item(c, count, ']');
}

/* Skips one value of any kind, checking it is JSON both parsers read alike. */
static int skip_value(Cur *c, int depth) {
    ws(c);
    if (c->p >= c->end) return NO;
    const char *s;
    Py_ssize_t n;
    int count = 0, r;
    switch (*c->p) {
    case '"':
        return string(c, &s, &n);
    case '{':
        if (depth >= MAX_DEPTH) return NO;
        c->p++;
        while ((r = member(c, &count, &s, &n)) == OK)
            if (skip_value(c, depth + 1) != OK) return NO;
        return r == END ? OK : NO;
    case '[':
        if (depth >= MAX_DEPTH) return NO;
        c->p++;
        while ((r = element(c, &count)) == OK)
            if (skip_value(c, depth + 1) != OK) return NO;
        return r == END ? OK : NO;
    case 't':
        return literal(c, "true", 4);
    case 'f':
        return literal(c, "false", 5);
    case 'n':
        return literal(c, "null", 4);
    default:
        return number(c);
    }
}

/* Skips one value and notes where it is. */
static int span_of(Cur *c, Span *span) {
    ws(c);
    span->start = c->p;
    if (skip_value(c, 1) != OK) return NO;
    span->end = c->p;
    return OK;
}

static int is_null(Span span) { return span.end - span.start == 4 && memcmp(span.start, "null", 4) == 0; }

/* A non-negative integer as JSON writes it, at most `max` (a sign, fraction or exponent: NO).
 * Its digits are [*digits, *digits + *ndigits): Python's str() of the value. */
static int unsigned_value(Cur *c, uint64_t max, uint64_t *out, const char **digits, Py_ssize_t *ndigits) {
    ws(c);
    const char *p = c->p, *e = c->end, *start = p;
    uint64_t value = 0;
    if (p >= e || !is_digit(*p)) return NO;
    if (*p == '0') {
        p++;
    } else {
        while (p < e && is_digit(*p)) {
            if (p - start >= 19) return NO; /* beyond any 64-bit value */
            value = value * 10 + (uint64_t)(*p - '0');
            p++;
        }
    }
    if (p < e && (*p == '.' || *p == 'e' || *p == 'E' || is_digit(*p))) return NO;
    if (value > max) return NO;
    c->p = p;
    *out = value;
    if (digits) {
        *digits = start;
        *ndigits = p - start;
    }
    return OK;
}

/* ---------- first pass: where the parts of an update are ---------- */

typedef struct {
    Span peer; /* the string's contents */
    Span withdraw, announce, attribute;
} Parts;

static int scan_update(Cur *c, Parts *parts) {
    const char *key;
    Py_ssize_t len;
    int count = 0, r;
    if (!expect(c, '{')) return NO;
    while ((r = member(c, &count, &key, &len)) == OK) {
        Span *slot = NULL;
        if (SAME(key, len, "withdraw")) slot = &parts->withdraw;
        else if (SAME(key, len, "announce")) slot = &parts->announce;
        else if (SAME(key, len, "attribute")) slot = &parts->attribute;
        if (slot) {
            if (slot->start || span_of(c, slot) != OK) return NO;
        } else if (skip_value(c, 2) != OK) {
            return NO;
        }
    }
    return r == END ? OK : NO;
}

static int scan_body(Cur *c, Parts *parts) {
    const char *key;
    Py_ssize_t len;
    int count = 0, r, seen_update = 0;
    if (!expect(c, '{')) return NO;
    while ((r = member(c, &count, &key, &len)) == OK) {
        if (SAME(key, len, "eor")) return NO;
        if (SAME(key, len, "update")) {
            if (seen_update++ || scan_update(c, parts) != OK) return NO;
        } else if (skip_value(c, 2) != OK) {
            return NO;
        }
    }
    return r == END && seen_update ? OK : NO;
}

static int scan_address(Cur *c, Parts *parts) {
    const char *key;
    Py_ssize_t len;
    int count = 0, r;
    if (!expect(c, '{')) return NO;
    while ((r = member(c, &count, &key, &len)) == OK) {
        if (SAME(key, len, "peer")) {
            const char *peer;
            Py_ssize_t peer_len;
            if (parts->peer.start || string(c, &peer, &peer_len) != OK || peer_len == 0) return NO;
            parts->peer.start = peer;
            parts->peer.end = peer + peer_len;
        } else if (skip_value(c, 2) != OK) {
            return NO;
        }
    }
    return r == END && parts->peer.start ? OK : NO;
}

static int scan_neighbor(Cur *c, Parts *parts) {
    const char *key;
    Py_ssize_t len;
    int count = 0, r, seen_address = 0, seen_message = 0;
    if (!expect(c, '{')) return NO;
    while ((r = member(c, &count, &key, &len)) == OK) {
        if (SAME(key, len, "address")) {
            if (seen_address++ || scan_address(c, parts) != OK) return NO;
        } else if (SAME(key, len, "message")) {
            if (seen_message++ || scan_body(c, parts) != OK) return NO;
        } else if (skip_value(c, 2) != OK) {
            return NO;
        }
    }
    return r == END && seen_address && seen_message ? OK : NO;
}

static int scan_line(Cur *c, Parts *parts) {
    const char *key;
    Py_ssize_t len;
    int count = 0, r, seen_type = 0, seen_neighbor = 0;
    if (!expect(c, '{')) return NO;
    while ((r = member(c, &count, &key, &len)) == OK) {
        if (SAME(key, len, "type")) {
            const char *kind;
            Py_ssize_t kind_len;
            if (seen_type++ || string(c, &kind, &kind_len) != OK || !SAME(kind, kind_len, "update")) return NO;
        } else if (SAME(key, len, "neighbor")) {
            if (seen_neighbor++ || scan_neighbor(c, parts) != OK) return NO;
        } else if (skip_value(c, 1) != OK) {
            return NO;
        }
    }
    if (r != END || !seen_type || !seen_neighbor) return NO;
    ws(c);
    return c->p == c->end ? OK : NO;
}

/* ---------- the scanner object: the parser's shared state ---------- */

#define UPDATE_FIELDS 6
#define PATH_FIELDS 9
static const char *const UPDATE_NAMES[UPDATE_FIELDS] = {"neighbor", "family", "prefix", "path_id", "path", "parsed"};
static const char *const PATH_NAMES[PATH_FIELDS] = {
    "next_hop", "as_path", "origin", "local_pref", "med", "communities", "large_communities", "peer", "path_id",
};

typedef struct {
    PyObject_HEAD
    PyTypeObject *update_type; /* RouteUpdate */
    PyTypeObject *path_type;   /* BgpPath */
    PyTypeObject *attributes_type; /* _Attributes (a tuple subclass) */
    Py_ssize_t update_offsets[UPDATE_FIELDS];
    Py_ssize_t path_offsets[PATH_FIELDS];
    PyObject *attribute_cache; /* dict: compact attribute text (bytes) -> _Attributes */
    PyObject *path_cache;      /* dict: (serial, next hop, peer, path-id) -> BgpPath */
    PyObject *strings;         /* dict: one str object per next hop / peer held by Paths */
    PyObject *known_prefix;    /* callable or None */
    PyObject *split_canonical; /* IPv6 prefixes go through Python's */
    Py_ssize_t max_cached;
    PyObject *peer;            /* the last peer string (lines of one session repeat it) */
    PyObject *hops[HOP_SLOTS]; /* recent next-hop strings */
    int next_hop_slot;
} Scanner;

/* A str of ASCII bytes, reusing `*slot` when it holds the same text (a new reference). */
static PyObject *ascii(const char *s, Py_ssize_t n) {
    PyObject *text = PyUnicode_New(n, 127);
    if (text) memcpy(PyUnicode_DATA(text), s, (size_t)n);
    return text;
}

static int holds(PyObject *text, const char *s, Py_ssize_t n) {
    return text && PyUnicode_GET_LENGTH(text) == n && memcmp(PyUnicode_DATA(text), s, (size_t)n) == 0;
}

static PyObject *peer_string(Scanner *self, Span span) {
    Py_ssize_t n = span.end - span.start;
    if (!holds(self->peer, span.start, n)) {
        PyObject *text = ascii(span.start, n);
        if (!text) return NULL;
        Py_XSETREF(self->peer, text);
    }
    return Py_NewRef(self->peer);
}

static PyObject *hop_string(Scanner *self, const char *s, Py_ssize_t n) {
    for (int i = 0; i < HOP_SLOTS; i++)
        if (holds(self->hops[i], s, n)) return Py_NewRef(self->hops[i]);
    PyObject *text = ascii(s, n);
    if (!text) return NULL;
    Py_XSETREF(self->hops[self->next_hop_slot], Py_NewRef(text));
    self->next_hop_slot = (self->next_hop_slot + 1) % HOP_SLOTS;
    return text;
}

/* An instance of a slotted class with every listed slot set (new references taken). */
static PyObject *new_slotted(PyTypeObject *type, const Py_ssize_t *offsets, PyObject *const *values, int count) {
    PyObject *obj = type->tp_alloc(type, 0);
    if (!obj) return NULL;
    for (int i = 0; i < count; i++) *(PyObject **)((char *)obj + offsets[i]) = Py_NewRef(values[i]);
    return obj;
}

/* ---------- second pass: prefixes, path-ids, attributes, events ---------- */

/* inet_pton(AF_INET) rules: four decimal octets, no leading zero, each at most 255. */
static int ipv4_address(const char *s, Py_ssize_t n, uint32_t *out) {
    uint32_t address = 0, octet = 0;
    int octets = 0, digits = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char ch = s[i];
        if (is_digit(ch)) {
            if (digits && octet == 0) return NO;
            octet = octet * 10 + (uint32_t)(ch - '0');
            if (octet > 255) return NO;
            if (!digits++) octets++;
        } else if (ch == '.' && digits && octets < 4) {
            address = address << 8 | octet;
            octet = 0;
            digits = 0;
        } else {
            return NO;
        }
    }
    if (octets != 4 || !digits) return NO;
    *out = address << 8 | octet;
    return OK;
}

/* A canonical prefix text parsed by the scanner itself: (canonical str, key) where `text` is a
 * valid prefix (`*canonical` is `text` itself when written canonically), NO where it is not one.
 * IPv4 is read here; IPv6 goes through Python's split_canonical. */
static int parse_prefix(Scanner *self, PyObject *text, const char *s, Py_ssize_t n, PyObject **canonical,
                        PyObject **key) {
    const char *slash = memchr(s, '/', (size_t)n);
    const char *length_text = slash ? slash + 1 : NULL;
    Py_ssize_t length_len = slash ? s + n - length_text : 0;
    if (length_len < 1 || length_len > 3) return NO;
    unsigned length = 0;
    for (Py_ssize_t i = 0; i < length_len; i++) {
        if (!is_digit(length_text[i])) return NO;
        length = length * 10 + (unsigned)(length_text[i] - '0');
    }
    if (memchr(s, ':', (size_t)(slash - s))) {
        PyObject *split = PyObject_CallOneArg(self->split_canonical, text);
        if (!split) return ERR;
        if (split == Py_None) {
            Py_DECREF(split);
            return NO;
        }
        /* checked: the prefix goes into events and the RIB, the key is the RIB's parsed key */
        if (!PyTuple_CheckExact(split) || PyTuple_GET_SIZE(split) != 2 ||
            !PyUnicode_CheckExact(PyTuple_GET_ITEM(split, 0)) || !PyTuple_CheckExact(PyTuple_GET_ITEM(split, 1))) {
            Py_DECREF(split);
            PyErr_SetString(PyExc_TypeError, "split_canonical must return (str, tuple) or None");
            return ERR;
        }
        *canonical = Py_NewRef(PyTuple_GET_ITEM(split, 0));
        *key = Py_NewRef(PyTuple_GET_ITEM(split, 1));
        Py_DECREF(split);
        return OK;
    }
    uint32_t network;
    if (ipv4_address(s, slash - s, &network) != OK || length > 32) return NO;
    if (length < 32 && (network & (0xFFFFFFFFu >> length))) return NO; /* host bits set */
    PyObject *network_number = PyLong_FromUnsignedLong(network);
    PyObject *length_number = network_number ? PyLong_FromUnsignedLong(length) : NULL;
    *key = length_number ? PyTuple_Pack(3, V4_FAMILY_NUMBER, network_number, length_number) : NULL;
    Py_XDECREF(network_number);
    Py_XDECREF(length_number);
    if (!*key) return ERR;
    if (length_len > 1 && length_text[0] == '0') { /* "/024" is /24, written "/24" */
        char written[32];
        int size = snprintf(written, sizeof written, "%u.%u.%u.%u/%u", network >> 24, (network >> 16) & 255,
                            (network >> 8) & 255, network & 255, length);
        *canonical = ascii(written, size);
        if (!*canonical) {
            Py_CLEAR(*key);
            return ERR;
        }
    } else {
        *canonical = Py_NewRef(text); /* inet_pton refuses leading zeros in the address */
    }
    return OK;
}

/* The prefix of an NLRI text and its (family, network, length) key (None when the text is taken
 * on known_prefix's word), as the Python paths' prefix_of: a canonical text is taken as it is;
 * known_prefix is asked only about any other text. */
static int prefix_of(Scanner *self, const char *s, Py_ssize_t n, PyObject **prefix, PyObject **key) {
    PyObject *canonical = NULL;
    *key = NULL;
    PyObject *text = ascii(s, n);
    if (!text) return ERR;
    int r = parse_prefix(self, text, s, n, &canonical, key);
    if (r == OK && PyUnicode_IS_ASCII(canonical) && PyUnicode_GET_LENGTH(canonical) == n && memcmp(PyUnicode_DATA(canonical), s, (size_t)n) == 0) {
        Py_DECREF(canonical);
        *prefix = text;
        return OK;
    }
    if (r != ERR && self->known_prefix != Py_None) {
        PyObject *answer = PyObject_CallOneArg(self->known_prefix, text);
        int known = answer ? PyObject_IsTrue(answer) : -1;
        Py_XDECREF(answer);
        if (known > 0) {
            Py_XDECREF(canonical);
            Py_CLEAR(*key);
            *prefix = text;
            return OK;
        }
        if (known < 0) r = ERR;
    }
    Py_DECREF(text);
    if (r != OK) {
        Py_XDECREF(canonical);
        Py_CLEAR(*key);
        return r;
    }
    *prefix = canonical;
    return OK;
}

/* A path-information string: dotted quad (ExaBGP's rendering) or decimal digits, as
 * exabgp_json_values.path_id_of reads it (leading zeros allowed). */
static int path_id_text(const char *s, Py_ssize_t n, uint32_t *out) {
    uint64_t parts[4] = {0, 0, 0, 0};
    int part = 0, digits = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (is_digit(s[i])) {
            parts[part] = parts[part] * 10 + (uint64_t)(s[i] - '0');
            if (parts[part] > 0xFFFFFFFFu) parts[part] = (uint64_t)1 << 32; /* saturate: too big */
            digits++;
        } else if (s[i] == '.' && digits && part < 3) {
            part++;
            digits = 0;
        } else {
            return NO;
        }
    }
    if (!digits) return NO;
    if (part == 0) {
        if (parts[0] > 0xFFFFFFFFu) return NO;
        *out = (uint32_t)parts[0];
        return OK;
    }
    if (part != 3 || parts[0] > 255 || parts[1] > 255 || parts[2] > 255 || parts[3] > 255) return NO;
    *out = (uint32_t)(parts[0] << 24 | parts[1] << 16 | parts[2] << 8 | parts[3]);
    return OK;
}

static int path_information(Cur *c, uint32_t *out) {
    ws(c);
    if (c->p >= c->end) return NO;
    if (*c->p == '"') {
        const char *s;
        Py_ssize_t n;
        return string(c, &s, &n) == OK ? path_id_text(s, n, out) : NO;
    }
    if (*c->p == 'n') {
        *out = 0;
        return literal(c, "null", 4);
    }
    uint64_t value;
    if (unsigned_value(c, 0xFFFFFFFFu, &value, NULL, NULL) != OK) return NO;
    *out = (uint32_t)value;
    return OK;
}

/* One NLRI (an object with "nlri" and maybe "path-information", or a bare string). */
static int nlri(Scanner *self, Cur *c, PyObject **prefix, uint32_t *path_id, PyObject **key) {
    const char *text = NULL, *name;
    Py_ssize_t text_len = 0, len;
    int count = 0, r, seen_info = 0;
    *path_id = 0;
    ws(c);
    if (c->p < c->end && *c->p == '"') {
        if (string(c, &text, &text_len) != OK) return NO;
    } else if (expect(c, '{')) {
        while ((r = member(c, &count, &name, &len)) == OK) {
            if (SAME(name, len, "nlri")) {
                if (text || string(c, &text, &text_len) != OK) return NO;
            } else if (SAME(name, len, "path-information")) {
                if (seen_info++ || path_information(c, path_id) != OK) return NO;
            } else if (skip_value(c, 1) != OK) {
                return NO;
            }
        }
        if (r != END || !text) return NO;
    } else {
        return NO;
    }
    return prefix_of(self, text, text_len, prefix, key);
}

/* "ipv4 unicast" / "ipv6 unicast", each at most once in an object. */
static PyObject *family_of(const char *key, Py_ssize_t len, int *seen) {
    if (SAME(key, len, "ipv4 unicast") && !(*seen & 1)) {
        *seen |= 1;
        return FAMILY_V4;
    }
    if (SAME(key, len, "ipv6 unicast") && !(*seen & 2)) {
        *seen |= 2;
        return FAMILY_V6;
    }
    return NULL;
}

static PyObject *new_update(Scanner *self, PyObject *peer, PyObject *family, PyObject *prefix, PyObject *path_id,
                            PyObject *path, PyObject *key) {
    PyObject *values[UPDATE_FIELDS] = {peer, family, prefix, path_id, path, key ? key : Py_None};
    return new_slotted(self->update_type, self->update_offsets, values, UPDATE_FIELDS);
}

static int withdraws(Scanner *self, Span span, PyObject *peer, PyObject *events) {
    Cur c = {span.start, span.end};
    const char *name;
    Py_ssize_t len;
    int count = 0, r, seen = 0;
    if (!expect(&c, '{')) return NO;
    while ((r = member(&c, &count, &name, &len)) == OK) {
        PyObject *family = family_of(name, len, &seen);
        int items = 0;
        if (!family || !expect(&c, '[')) return NO;
        while ((r = element(&c, &items)) == OK) {
            PyObject *prefix, *key;
            uint32_t path_id;
            if ((r = nlri(self, &c, &prefix, &path_id, &key)) != OK) return r;
            PyObject *id = PyLong_FromUnsignedLong(path_id);
            PyObject *event = id ? new_update(self, peer, family, prefix, id, Py_None, key) : NULL;
            Py_XDECREF(id);
            Py_DECREF(prefix);
            Py_XDECREF(key);
            if (!event) return ERR;
            r = PyList_Append(events, event);
            Py_DECREF(event);
            if (r < 0) return ERR;
        }
        if (r != END) return NO;
    }
    return r == END ? OK : NO;
}

/* ---------- attributes ---------- */

static int compare_asns(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* A list of 32-bit AS numbers appended to asns[*count]. */
static int asn_list(Cur *c, uint32_t *asns, int *count) {
    int items = 0, r;
    if (!expect(c, '[')) return NO;
    while ((r = element(c, &items)) == OK) {
        uint64_t value;
        if (*count >= MAX_ASNS || unsigned_value(c, 0xFFFFFFFFu, &value, NULL, NULL) != OK) return NO;
        asns[(*count)++] = (uint32_t)value;
    }
    return r == END ? OK : NO;
}

/* ExaBGP 5 segments {"0": {"element": ..., "value": [...]}, "1": ...}, keys in order. */
static int as_path_segments(Cur *c, uint32_t *asns, int *count) {
    const char *key;
    Py_ssize_t len;
    int segments = 0, r;
    while ((r = member(c, &segments, &key, &len)) == OK) {
        /* the key must be the segment's position, in decimal without leading zero */
        int index = len >= 1 && len <= 4 && (len == 1 || key[0] != '0') ? 0 : -1;
        for (Py_ssize_t i = 0; index >= 0 && i < len; i++) index = is_digit(key[i]) ? index * 10 + (key[i] - '0') : -1;
        if (index != segments - 1 || !expect(c, '{')) return NO;
        const char *name;
        Py_ssize_t name_len;
        int fields = 0, is_set = -1, first = *count, have_value = 0;
        while ((r = member(c, &fields, &name, &name_len)) == OK) {
            if (SAME(name, name_len, "element")) {
                const char *element_name;
                Py_ssize_t element_len;
                if (is_set >= 0 || string(c, &element_name, &element_len) != OK) return NO;
                if (SAME(element_name, element_len, "as-sequence")) is_set = 0;
                else if (SAME(element_name, element_len, "as-set")) is_set = 1;
                else return NO;
            } else if (SAME(name, name_len, "value")) {
                if (have_value++ || asn_list(c, asns, count) != OK) return NO;
            } else if (skip_value(c, 3) != OK) {
                return NO;
            }
        }
        if (r != END || is_set < 0 || !have_value) return NO;
        if (is_set) qsort(asns + first, (size_t)(*count - first), sizeof *asns, compare_asns); /* no order */
    }
    return r == END ? OK : NO;
}

static int as_path(Cur *c, PyObject **out) {
    uint32_t asns[MAX_ASNS];
    int count = 0;
    ws(c);
    if (c->p < c->end && *c->p == '[') {
        if (asn_list(c, asns, &count) != OK) return NO;
    } else if (expect(c, '{')) {
        if (as_path_segments(c, asns, &count) != OK) return NO;
    } else {
        return NO;
    }
    PyObject *path = PyTuple_New(count);
    if (!path) return ERR;
    for (int i = 0; i < count; i++) {
        PyObject *asn = PyLong_FromUnsignedLong(asns[i]);
        if (!asn) {
            Py_DECREF(path);
            return ERR;
        }
        PyTuple_SET_ITEM(path, i, asn);
    }
    *out = path;
    return OK;
}

/* Standard ([a, b] → "a:b", each < 2^16) or large ([a, b, c] → "a:b:c", 32 bits) communities. */
static int communities(Cur *c, int width, PyObject **out) {
    uint64_t limit = width == 2 ? 0xFFFFu : 0xFFFFFFFFu;
    int items = 0, r;
    if (!expect(c, '[')) return NO;
    PyObject *texts = PyList_New(0);
    if (!texts) return ERR;
    while ((r = element(c, &items)) == OK) {
        char text[3 * 11];
        size_t used = 0;
        int numbers = 0;
        if (!expect(c, '[')) break;
        while ((r = element(c, &numbers)) == OK) {
            uint64_t value;
            const char *digits;
            Py_ssize_t ndigits;
            if (numbers > width || unsigned_value(c, limit, &value, &digits, &ndigits) != OK) break;
            if (numbers > 1) text[used++] = ':';
            memcpy(text + used, digits, (size_t)ndigits); /* at most 10 digits */
            used += (size_t)ndigits;
        }
        if (r != END || numbers != width) {
            r = NO;
            break;
        }
        PyObject *community = ascii(text, (Py_ssize_t)used);
        if (!community || PyList_Append(texts, community) < 0) {
            Py_XDECREF(community);
            Py_DECREF(texts);
            return ERR;
        }
        Py_DECREF(community);
    }
    if (r != END) {
        Py_DECREF(texts);
        return NO;
    }
    *out = PyList_AsTuple(texts);
    Py_DECREF(texts);
    return *out ? OK : ERR;
}

enum { A_AS_PATH, A_ORIGIN, A_LOCAL_PREF, A_MED, A_COMMUNITIES, A_LARGE, A_COUNT };

/* The values of an attribute object (its '{' consumed), as exabgp_json_values.parse_attributes. */
static int attribute_values(Cur *c, PyObject **values) {
    const char *key;
    Py_ssize_t len;
    int count = 0, r;
    while ((r = member(c, &count, &key, &len)) == OK) {
        int slot;
        if (SAME(key, len, "as-path")) slot = A_AS_PATH;
        else if (SAME(key, len, "origin")) slot = A_ORIGIN;
        else if (SAME(key, len, "local-preference")) slot = A_LOCAL_PREF;
        else if (SAME(key, len, "med")) slot = A_MED;
        else if (SAME(key, len, "community")) slot = A_COMMUNITIES;
        else if (SAME(key, len, "large-community")) slot = A_LARGE;
        else if (SAME(key, len, "error")) return NO; /* treat-as-withdraw: the reference path's */
        else if (skip_value(c, 2) != OK) return NO;
        else continue;
        if (values[slot]) return NO; /* a duplicate key */
        if (slot == A_AS_PATH) {
            if ((r = as_path(c, &values[slot])) != OK) return r;
        } else if (slot == A_ORIGIN) {
            const char *origin;
            Py_ssize_t origin_len;
            if (string(c, &origin, &origin_len) != OK) return NO;
            if (SAME(origin, origin_len, "igp")) values[slot] = Py_NewRef(ORIGIN_IGP);
            else if (SAME(origin, origin_len, "egp")) values[slot] = Py_NewRef(ORIGIN_EGP);
            else if (SAME(origin, origin_len, "incomplete")) values[slot] = Py_NewRef(ORIGIN_INCOMPLETE);
            else return NO;
        } else if (slot == A_LOCAL_PREF || slot == A_MED) {
            uint64_t value;
            if (unsigned_value(c, 0xFFFFFFFFu, &value, NULL, NULL) != OK) return NO;
            if (!(values[slot] = PyLong_FromUnsignedLongLong(value))) return ERR;
        } else if ((r = communities(c, slot == A_COMMUNITIES ? 2 : 3, &values[slot])) != OK) {
            return r;
        }
    }
    return r == END ? OK : NO;
}

/* The attribute text without whitespace outside strings (strings hold no escape): for what
 * ExaBGP writes, the bytes orjson.dumps gives for the parsed object, i.e. the Python fast path's
 * cache key. Equal keys are equal attribute objects either way. */
static PyObject *compact_key(Span span) {
    PyObject *key = PyBytes_FromStringAndSize(NULL, span.end - span.start);
    if (!key) return NULL;
    char *out = PyBytes_AS_STRING(key), *start = out;
    int in_string = 0;
    for (const char *p = span.start; p < span.end; p++) {
        char ch = *p;
        if (ch == '"') in_string = !in_string;
        else if (!in_string && (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')) continue;
        *out++ = ch;
    }
    if (_PyBytes_Resize(&key, out - start) < 0) return NULL;
    return key;
}

/* The parser's _Attributes for the attribute object at `span` (absent: {}): from the shared
 * cache, or parsed and cached as ExabgpJsonParser._attributes_keyed does. */
static int attributes(Scanner *self, Span span, PyObject **out) {
    PyObject *key;
    if (span.start) {
        if (span.start >= span.end || *span.start != '{') return NO;
        key = compact_key(span);
    } else {
        key = Py_NewRef(EMPTY_KEY);
    }
    if (!key) return ERR;
    PyObject *cached = PyDict_GetItemWithError(self->attribute_cache, key);
    if (cached || PyErr_Occurred()) {
        Py_DECREF(key);
        *out = Py_XNewRef(cached);
        return cached ? OK : ERR;
    }
    PyObject *values[A_COUNT] = {NULL};
    int r = OK;
    if (span.start) {
        Cur c = {span.start + 1, span.end};
        r = attribute_values(&c, values);
    }
    PyObject *defaults[A_COUNT] = {EMPTY_TUPLE, ORIGIN_IGP, LOCAL_PREF_DEFAULT, MED_DEFAULT, EMPTY_TUPLE, EMPTY_TUPLE};
    PyObject *parsed = NULL;
    if (r == OK) {
        Py_ssize_t serial = PyDict_GET_SIZE(self->attribute_cache);
        if (serial >= self->max_cached) { /* bounded; Paths are keyed by serial, so they go too */
            PyDict_Clear(self->attribute_cache);
            PyDict_Clear(self->path_cache);
            serial = 0;
        }
        PyObject *serial_number = PyLong_FromSsize_t(serial);
        parsed = serial_number ? self->attributes_type->tp_alloc(self->attributes_type, 1 + A_COUNT) : NULL;
        if (parsed) {
            PyTuple_SET_ITEM(parsed, 0, Py_NewRef(serial_number));
            for (int i = 0; i < A_COUNT; i++)
                PyTuple_SET_ITEM(parsed, 1 + i, Py_NewRef(values[i] ? values[i] : defaults[i]));
            if (PyDict_SetItem(self->attribute_cache, key, parsed) < 0) Py_CLEAR(parsed);
        }
        Py_XDECREF(serial_number);
        if (!parsed) r = ERR;
    }
    for (int i = 0; i < A_COUNT; i++) Py_XDECREF(values[i]);
    Py_DECREF(key);
    *out = parsed;
    return r;
}

/* ---------- announces ---------- */

/* The shared BgpPath of (attribute set, next hop, peer, path-id), as ExabgpJsonParser._path. */
static PyObject *path_of(Scanner *self, PyObject *parsed, PyObject *hop, PyObject *peer, PyObject *path_id) {
    PyObject *serial = PyTuple_GET_ITEM(parsed, 0);
    PyObject *key = PyTuple_Pack(4, serial, hop, peer, path_id);
    if (!key) return NULL;
    PyObject *path = PyDict_GetItemWithError(self->path_cache, key);
    Py_DECREF(key);
    if (path || PyErr_Occurred()) return Py_XNewRef(path);
    if (PyDict_GET_SIZE(self->strings) >= self->max_cached) PyDict_Clear(self->strings);
    PyObject *shared_hop = Py_XNewRef(PyDict_SetDefault(self->strings, hop, hop));
    PyObject *shared_peer = shared_hop ? Py_XNewRef(PyDict_SetDefault(self->strings, peer, peer)) : NULL;
    if (!shared_peer) {
        Py_XDECREF(shared_hop);
        return NULL;
    }
    PyObject *values[PATH_FIELDS] = {
        shared_hop,
        PyTuple_GET_ITEM(parsed, 1 + A_AS_PATH),
        PyTuple_GET_ITEM(parsed, 1 + A_ORIGIN),
        PyTuple_GET_ITEM(parsed, 1 + A_LOCAL_PREF),
        PyTuple_GET_ITEM(parsed, 1 + A_MED),
        PyTuple_GET_ITEM(parsed, 1 + A_COMMUNITIES),
        PyTuple_GET_ITEM(parsed, 1 + A_LARGE),
        shared_peer,
        path_id,
    };
    key = PyTuple_Pack(4, serial, shared_hop, shared_peer, path_id);
    path = key ? new_slotted(self->path_type, self->path_offsets, values, PATH_FIELDS) : NULL;
    if (path) {
        if (PyDict_GET_SIZE(self->path_cache) >= self->max_cached) PyDict_Clear(self->path_cache);
        if (PyDict_SetItem(self->path_cache, key, path) < 0) Py_CLEAR(path);
    }
    Py_XDECREF(key);
    Py_DECREF(shared_hop);
    Py_DECREF(shared_peer);
    return path;
}

/* A next hop as _valid_next_hop checks it: hex digits, '.' and ':' only. */
static int valid_next_hop(const char *s, Py_ssize_t n) {
    if (n == 0) return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!(is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F') || ch == '.' || ch == ':'))
            return 0;
    }
    return 1;
}

static int announced(Scanner *self, Cur *c, PyObject *parsed, PyObject *family, PyObject *hop, PyObject *peer,
                     PyObject *events) {
    int items = 0, r;
    if (!expect(c, '[')) return NO;
    while ((r = element(c, &items)) == OK) {
        PyObject *prefix, *key;
        uint32_t path_id;
        if ((r = nlri(self, c, &prefix, &path_id, &key)) != OK) return r;
        PyObject *id = PyLong_FromUnsignedLong(path_id);
        PyObject *path = id ? path_of(self, parsed, hop, peer, id) : NULL;
        PyObject *event = path ? new_update(self, peer, family, prefix, id, path, key) : NULL;
        Py_XDECREF(id);
        Py_XDECREF(path);
        Py_DECREF(prefix);
        Py_XDECREF(key);
        if (!event) return ERR;
        r = PyList_Append(events, event);
        Py_DECREF(event);
        if (r < 0) return ERR;
    }
    return r == END ? OK : NO;
}

static int announces(Scanner *self, Span span, PyObject *parsed, PyObject *peer, PyObject *events) {
    Cur c = {span.start, span.end};
    const char *name;
    Py_ssize_t len;
    int count = 0, r, seen = 0;
    if (!expect(&c, '{')) return NO;
    while ((r = member(&c, &count, &name, &len)) == OK) {
        PyObject *family = family_of(name, len, &seen);
        if (!family || !expect(&c, '{')) return NO;
        Span hops[MAX_NEXT_HOPS];
        int hop_count = 0;
        while ((r = member(&c, &hop_count, &name, &len)) == OK) {
            if (hop_count > MAX_NEXT_HOPS || !valid_next_hop(name, len)) return NO;
            for (int i = 0; i < hop_count - 1; i++)
                if (hops[i].end - hops[i].start == len && memcmp(hops[i].start, name, (size_t)len) == 0) return NO;
            hops[hop_count - 1].start = name;
            hops[hop_count - 1].end = name + len;
            PyObject *hop = hop_string(self, name, len);
            if (!hop) return ERR;
            r = announced(self, &c, parsed, family, hop, peer, events);
            Py_DECREF(hop);
            if (r != OK) return r;
        }
        if (r != END) return NO;
    }
    return r == END ? OK : NO;
}

/* ---------- Scanner.scan ---------- */

static PyObject *Scanner_scan(Scanner *self, PyObject *line) {
    const char *data;
    Py_ssize_t size;
    if (PyUnicode_Check(line)) {
        if (!PyUnicode_IS_ASCII(line)) Py_RETURN_NONE;
        data = PyUnicode_DATA(line);
        size = PyUnicode_GET_LENGTH(line);
    } else if (PyBytes_Check(line)) {
        data = PyBytes_AS_STRING(line);
        size = PyBytes_GET_SIZE(line);
    } else {
        Py_RETURN_NONE;
    }
    Parts parts;
    memset(&parts, 0, sizeof parts);
    Cur c = {data, data + size};
    if (scan_line(&c, &parts) != OK) Py_RETURN_NONE;
    PyObject *events = PyList_New(0);
    PyObject *peer = events ? peer_string(self, parts.peer) : NULL;
    int r = peer ? OK : ERR;
    if (r == OK && parts.withdraw.start && !is_null(parts.withdraw)) r = withdraws(self, parts.withdraw, peer, events);
    if (r == OK && parts.announce.start && !is_null(parts.announce)) {
        PyObject *parsed;
        r = attributes(self, parts.attribute, &parsed);
        if (r == OK) {
            r = announces(self, parts.announce, parsed, peer, events);
            Py_DECREF(parsed);
        }
    }
    Py_XDECREF(peer);
    if (r == OK) return events;
    Py_XDECREF(events);
    if (r == ERR) return NULL;
    Py_RETURN_NONE;
}

/* ---------- Scanner type ---------- */

static int field_offsets(PyTypeObject *type, const char *const *names, int count, Py_ssize_t *offsets) {
    for (int i = 0; i < count; i++) {
        PyObject *descriptor = PyObject_GetAttrString((PyObject *)type, names[i]);
        if (!descriptor) return -1;
        int ok = Py_IS_TYPE(descriptor, &PyMemberDescr_Type) &&
                 PyType_IsSubtype(type, ((PyMemberDescrObject *)descriptor)->d_common.d_type);
        if (ok) {
            PyMemberDef *member = ((PyMemberDescrObject *)descriptor)->d_member;
            ok = member->type == T_OBJECT_EX && !(member->flags & READONLY);
            offsets[i] = member->offset;
        }
        Py_DECREF(descriptor);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "%s.%s is not a writable slot", type->tp_name, names[i]);
            return -1;
        }
    }
    return 0;
}

static int Scanner_traverse(Scanner *self, visitproc visit, void *arg) {
    Py_VISIT(self->update_type);
    Py_VISIT(self->path_type);
    Py_VISIT(self->attributes_type);
    Py_VISIT(self->attribute_cache);
    Py_VISIT(self->path_cache);
    Py_VISIT(self->strings);
    Py_VISIT(self->known_prefix);
    Py_VISIT(self->split_canonical);
    return 0;
}

static int Scanner_clear(Scanner *self) {
    Py_CLEAR(self->update_type);
    Py_CLEAR(self->path_type);
    Py_CLEAR(self->attributes_type);
    Py_CLEAR(self->attribute_cache);
    Py_CLEAR(self->path_cache);
    Py_CLEAR(self->strings);
    Py_CLEAR(self->known_prefix);
    Py_CLEAR(self->split_canonical);
    Py_CLEAR(self->peer);
    for (int i = 0; i < HOP_SLOTS; i++) Py_CLEAR(self->hops[i]);
    return 0;
}

static void Scanner_dealloc(Scanner *self) {
    PyObject_GC_UnTrack(self);
    Scanner_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Scanner_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"route_update", "path", "attributes", "attribute_cache", "path_cache", "strings",
                               "known_prefix", "split_canonical", "max_cached", NULL};
    PyTypeObject *update_type, *path_type, *attributes_type;
    PyObject *attribute_cache, *path_cache, *strings, *known_prefix, *split_canonical;
    Py_ssize_t max_cached;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O!O!O!O!OOn:Scanner", keywords, &PyType_Type, &update_type,
                                     &PyType_Type, &path_type, &PyType_Type, &attributes_type, &PyDict_Type,
                                     &attribute_cache, &PyDict_Type, &path_cache, &PyDict_Type, &strings,
                                     &known_prefix, &split_canonical, &max_cached))
        return NULL;
    if (!PyType_IsSubtype(attributes_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "attributes must be a tuple subclass");
        return NULL;
    }
    Scanner *self = (Scanner *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->update_type = (PyTypeObject *)Py_NewRef(update_type);
    self->path_type = (PyTypeObject *)Py_NewRef(path_type);
    self->attributes_type = (PyTypeObject *)Py_NewRef(attributes_type);
    self->attribute_cache = Py_NewRef(attribute_cache);
    self->path_cache = Py_NewRef(path_cache);
    self->strings = Py_NewRef(strings);
    self->known_prefix = Py_NewRef(known_prefix);
    self->split_canonical = Py_NewRef(split_canonical);
    self->max_cached = max_cached;
    if (field_offsets(update_type, UPDATE_NAMES, UPDATE_FIELDS, self->update_offsets) < 0 ||
        field_offsets(path_type, PATH_NAMES, PATH_FIELDS, self->path_offsets) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_O, "scan(line) -> events of a well-formed update line, or None"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "topfib.collector.rib._exabgp_fast.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "ExaBGP JSON update lines to RouteUpdate events (None: leave the line to Python)",
    .tp_new = Scanner_new,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_traverse = (traverseproc)Scanner_traverse,
    .tp_clear = (inquiry)Scanner_clear,
    .tp_methods = Scanner_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_exabgp_fast", "ExaBGP JSON update fast path (C)", -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__exabgp_fast(void) {
    if (!FAMILY_V4) {
        FAMILY_V4 = PyUnicode_InternFromString("ipv4 unicast");
        FAMILY_V6 = PyUnicode_InternFromString("ipv6 unicast");
        ORIGIN_IGP = PyUnicode_InternFromString("igp");
        ORIGIN_EGP = PyUnicode_InternFromString("egp");
        ORIGIN_INCOMPLETE = PyUnicode_InternFromString("incomplete");
        LOCAL_PREF_DEFAULT = PyLong_FromLong(100);
        MED_DEFAULT = PyLong_FromLong(0);
        V4_FAMILY_NUMBER = PyLong_FromLong(IPV4_FAMILY);
        EMPTY_TUPLE = PyTuple_New(0);
        EMPTY_KEY = PyBytes_FromString("{}");
        if (!FAMILY_V4 || !FAMILY_V6 || !ORIGIN_IGP || !ORIGIN_EGP || !ORIGIN_INCOMPLETE || !LOCAL_PREF_DEFAULT ||
            !MED_DEFAULT || !V4_FAMILY_NUMBER || !EMPTY_TUPLE || !EMPTY_KEY)
            return NULL;
    }
    if (PyType_Ready(&ScannerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
