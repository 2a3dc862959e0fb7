/* The compiled hot path: the lines agents send, checked and written without a dict.
 *
 * A line takes this path only if the record it makes is certain to be the one the Python
 * path (logd/record.py, the steps, orjson) would make, byte for byte: one JSON object, in the
 * subset of JSON whose canonical encoding is its own text once its \uXXXX and \/ escapes are
 * written as orjson writes their characters (no number orjson would reformat), with a time,
 * a level and a message under the keys record.normalize_object reads them from (time: RFC
 * 3339 with an offset, or an epoch number; level: a known spelling or number; message: text),
 * no duplicate key, no 20-digit run, no key a later step must see whole (trace shapes, usage
 * shapes: told by Python), no secret key, no string the redaction patterns match and no text
 * field (message, names, errors: told by Python) holding a key=value secret; loguru's
 * serialize=True envelope is first rewritten into the flat record it stands for (loguru_flat).
 * Anything else stops the run and goes to the Python path, which decides. So this file only ever makes a
 * line faster, never different (tests/test_hotpath.py, tests/test_go_dialects.py).
 *
 * Output per line: {"time":<canonical>,"level":<canonical>,"message":...,<other keys in the
 * order sent, without whitespace>,<trusted fields>}\n, and for the counting steps the tallies
 * their roles asked for (logd/spec.py): records by a label key and level, a histogram of a
 * numeric key per label, whole numbers under a key summed by two labels. Lines a step reads
 * come as runs of their own, their records decoded in Python; among them, trace entries that
 * report nothing by the steps' own rule (QuietEntries: EntryRule) come as runs that give no
 * record at all, only each one's count, run hook fields and session. Which keys those
 * are, and which keys and levels send a line to Python, the steps declare; nothing here
 * names a field but time, level and message and their spellings (role_of).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#define K_SECRET 1  /* a redacted key name: its record goes to Python */
#define K_BAIL 2    /* at the top level: a later step reads it (traces, usage shapes, reserved) */
#define K_TEXT 4    /* its strings (at any depth) are text the key=value rule looks at */
#define K_READ 8    /* at the top level: a step reads its record in Python, but changes nothing (ReadsRecords) */
#define K_FULL 16   /* at the top level of a trace entry: a step needs its record after all (QuietEntries) */

#define MAX_DEPTH 32
#define MAX_TOP 64
#define MAX_NESTED_KEYS 64
#define CACHE_SLOTS 8192 /* power of two; cleared when half full */
#define CACHE_MAX_BYTES 256

/* ---- a bounded cache of byte strings -> small int (known-clean strings, key classes) ---- */

typedef struct {
    uint64_t hash;
    Py_ssize_t len;
    char *data;
    int value;
} Entry;

typedef struct {
    Entry *slots;
    Py_ssize_t used;
} Cache;

/* Set once per process from os.urandom (module init): which strings share a slot cannot be
 * worked out ahead, so a client cannot send keys that all collide. */
static uint64_t hash_seed;

/* FNV-1a from a seeded start, then a full mix (splitmix64's finaliser), so every bit of the
 * slot index depends on every byte. Never 0: 0 marks an empty slot. */
static uint64_t hash_bytes(const char *p, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL ^ hash_seed;
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h ? h : 1;
}

static int cache_init(Cache *c) {
    c->slots = PyMem_Calloc(CACHE_SLOTS, sizeof(Entry));
    c->used = 0;
    return c->slots ? 0 : -1;
}

static void cache_clear(Cache *c) {
    if (!c->slots) return;
    for (Py_ssize_t i = 0; i < CACHE_SLOTS; i++) {
        if (c->slots[i].hash) PyMem_Free(c->slots[i].data);
    }
    memset(c->slots, 0, CACHE_SLOTS * sizeof(Entry));
    c->used = 0;
}

static void cache_free(Cache *c) {
    cache_clear(c);
    PyMem_Free(c->slots);
    c->slots = NULL;
}

/* the entry's value, or -1 when absent */
static int cache_get(Cache *c, const char *p, Py_ssize_t n, uint64_t h) {
    Py_ssize_t i = (Py_ssize_t)(h & (CACHE_SLOTS - 1));
    for (;;) {
        Entry *e = &c->slots[i];
        if (!e->hash) return -1;
        if (e->hash == h && e->len == n && memcmp(e->data, p, (size_t)n) == 0) return e->value;
        i = (i + 1) & (CACHE_SLOTS - 1);
    }
}

static void cache_put(Cache *c, const char *p, Py_ssize_t n, uint64_t h, int value) {
    if (n > CACHE_MAX_BYTES) return;
    if (c->used * 2 >= CACHE_SLOTS) cache_clear(c); /* forget all rather than grow */
    char *copy = PyMem_Malloc(n ? (size_t)n : 1);
    if (!copy) return; /* a cache: nothing lost but time */
    memcpy(copy, p, (size_t)n);
    Py_ssize_t i = (Py_ssize_t)(h & (CACHE_SLOTS - 1));
    while (c->slots[i].hash) i = (i + 1) & (CACHE_SLOTS - 1);
    c->slots[i].hash = h;
    c->slots[i].len = n;
    c->slots[i].data = copy;
    c->slots[i].value = value;
    c->used++;
}

/* ---- the object ---- */

typedef struct {
    char *data; /* NULL: none */
    Py_ssize_t len;
} Name;

static int name_set(Name *name, PyObject *text) {
    PyMem_Free(name->data);
    name->data = NULL;
    name->len = 0;
    if (text == Py_None) return 0;
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
    if (!utf8) return -1;
    name->data = PyMem_Malloc(n ? (size_t)n : 1);
    if (!name->data) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(name->data, utf8, (size_t)n);
    name->len = n;
    return 0;
}

static inline int name_is(const Name *name, const char *p, Py_ssize_t n) {
    return name->data && name->len == n && memcmp(name->data, p, (size_t)n) == 0;
}

#define MAX_HOOKS 8
#define MAX_NESTED_NAMES 8

/* QuietEntries (logd/spec.py): a line a step reads whose `hook` holds one of `hooks` and whose
 * `session` holds text, with no K_FULL key, none of `nested_names` in its `nested` object (a
 * name "a.b": b in the object under a), no
 * `result` object with a `result_error` that is not empty, no `type` text starting with
 * `type_prefix`, and text or null (or nothing) under `agent_id` and `agent`: its record would
 * only be counted by agent and level, paired if a run hook, and filed under its session (and
 * written, at a level the floor keeps). Such lines come as their own runs. */
typedef struct {
    int on;
    PyObject *shape;           /* the shape a trace branch's selector gives such an entry, with its session */
    PyObject *hook_objects;    /* tuple: the hooks as str, handed back with a run hook */
    Name hook, session, agent_id, agent, nested, type, type_prefix, result, result_error;
    Name hooks[MAX_HOOKS];
    int nhooks;
    int run_hooks;             /* bit i: hooks[i] starts or ends a run (its fields are handed back) */
    Name nested_names[MAX_NESTED_NAMES];
    int nnested;
} EntryRule;

typedef struct {
    PyObject_HEAD
    PyObject *aliases;       /* dict: level spelling -> canonical level */
    PyObject *actions;       /* dict: canonical level -> 0 keep, 1 below the floor, 2 Python */
    PyObject *classify_key;  /* callable(str) -> K_* flags */
    PyObject *value_clean;   /* callable(str) -> bool (no pattern matches), or None */
    PyObject *message_clean; /* callable(str) -> bool (no key=value secret), or None */
    /* what the counting steps declared (logd/spec.py's roles), by key name; an empty name: no such role */
    Name label;              /* CountByLevel: records counted by (this key's text, level) */
    int count;               /* that count is asked for (else the label is only the sums' first label) */
    Name histogram;          /* ... and this key's number / scale observed in buckets, per label */
    double scale;
    double *buckets;         /* ascending */
    Py_ssize_t nbuckets;
    Name sum;                /* SumFields: whole numbers under this key, summed by (label, sum_label) */
    Name sum_label;
    PyObject *directions;    /* dict: field name under `sum` -> 0 input, 1 output, 2 total */
    Name names;              /* CountNames: records whose text here is counted by (label, it, failed) */
    Name failed;             /* ... failed: this key's value is truthy, or the level's bit is in failed_ranks */
    long failed_ranks;
    Name observe;            /* ObserveNumber: this key's number / observe_scale in observe_buckets, */
    Name observe_label;      /* ... per this key's text (absent or null: not observed) */
    Name thin;               /* Thins: per line written, this key's text, the level and the message */
    double observe_scale;
    double *observe_buckets; /* ascending */
    Py_ssize_t n_observe_buckets;
    Py_ssize_t min_len;      /* characters: shorter strings cannot match a pattern */
    int redact;
    int naive_utc;           /* a time without an offset (the machine's local time) is UTC at every moment */
    EntryRule entries;       /* QuietEntries: trace entries no step needs a record of */
    Cache keys, values, messages;
} FastPath;

/* ---- scanning ---- */

enum { T_STRING, T_INT, T_FLOAT, T_TRUE, T_FALSE, T_NULL, T_OBJECT, T_ARRAY };

typedef struct {
    const char *p;
    Py_ssize_t pos, n;
    int ws;  /* whitespace seen inside the value being scanned */
    FastPath *fp;
} Scan;

typedef struct {
    Py_ssize_t start, len; /* the content, without quotes */
    Py_ssize_t chars;      /* code points once unescaped */
    int escaped;
} Str;

static inline void skip_ws(Scan *s) {
    while (s->pos < s->n) {
        char c = s->p[s->pos];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            s->pos++;
            s->ws = 1;
        } else {
            break;
        }
    }
}

static inline int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1; /* upper case: orjson writes lower case, so such a line is not canonical */
}

/* A string at s->pos (the opening quote): 0 and its span when valid UTF-8 JSON whose text is
 * what orjson would write for it; -1 otherwise. A run of 20 digits fails too (record.py reads
 * such lines with the standard library). */
static int scan_string(Scan *s, Str *out) {
    const unsigned char *p = (const unsigned char *)s->p;
    Py_ssize_t i = s->pos + 1, n = s->n, chars = 0;
    int digits = 0, escaped = 0;
    out->start = i;
    while (i < n) {
        unsigned char c = p[i];
        if (c == '"') {
            out->len = i - out->start;
            out->chars = chars;
            out->escaped = escaped;
            s->pos = i + 1;
            return 0;
        }
        if (c >= '0' && c <= '9') {
            if (++digits >= 20) return -1;
            i++;
            chars++;
            continue;
        }
        digits = 0;
        if (c < 0x80) {
            if (c < 0x20) return -1;
            if (c == '\\') {
                if (i + 1 >= n) return -1;
                char e = (char)p[i + 1];
                if (e == '"' || e == '\\' || e == 'n' || e == 'r' || e == 't' || e == 'b' || e == 'f') {
                    i += 2;
                } else if (e == 'u') {
                    /* only the form orjson writes: \u00xx for a control character without a short form */
                    if (i + 5 >= n || p[i + 2] != '0' || p[i + 3] != '0') return -1;
                    int hi = hexval((char)p[i + 4]), lo = hexval((char)p[i + 5]);
                    if (hi < 0 || lo < 0) return -1;
                    int v = hi * 16 + lo;
                    if (v >= 0x20 || v == '\b' || v == '\t' || v == '\n' || v == '\f' || v == '\r') return -1;
                    /* its digits count in a digit run, as record.py counts bytes */
                    digits = 2;
                    digits = (p[i + 4] >= '0' && p[i + 4] <= '9') ? digits + 1 : 0;
                    digits = (p[i + 5] >= '0' && p[i + 5] <= '9') ? digits + 1 : 0;
                    i += 6;
                    escaped = 1;
                    chars++;
                    continue;
                } else {
                    return -1;
                }
                escaped = 1;
                chars++;
                continue;
            }
            i++;
            chars++;
            continue;
        }
        /* UTF-8: well formed, shortest form, no surrogates, at most U+10FFFF */
        if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (p[i + 1] & 0xC0) != 0x80) return -1;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n || (p[i + 1] & 0xC0) != 0x80 || (p[i + 2] & 0xC0) != 0x80) return -1;
            if (c == 0xE0 && p[i + 1] < 0xA0) return -1;
            if (c == 0xED && p[i + 1] >= 0xA0) return -1;
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n || (p[i + 1] & 0xC0) != 0x80 || (p[i + 2] & 0xC0) != 0x80 || (p[i + 3] & 0xC0) != 0x80)
                return -1;
            if (c == 0xF0 && p[i + 1] < 0x90) return -1;
            if (c == 0xF4 && p[i + 1] >= 0x90) return -1;
            i += 4;
        } else {
            return -1;
        }
        chars++;
    }
    return -1;
}

/* Whether a float's text (fixed notation, in [1e-4, 1e16)) is the shortest that reads back as
 * its double: Python's repr, which is what orjson writes in that range (tests/test_hotpath.py
 * compares them on 60,000 doubles; 1.9 million once). Both reads are correctly rounded. */
static int shortest_text(const char *p, Py_ssize_t n) {
    char buf[48];
    if (n > 40) return 0;
    memcpy(buf, p, (size_t)n);
    buf[n] = 0;
    double v = PyOS_string_to_double(buf, NULL, NULL);
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    char *repr = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!repr) {
        PyErr_Clear();
        return 0;
    }
    int same = strcmp(repr, buf) == 0;
    PyMem_Free(repr);
    return same;
}

/* A number at s->pos: T_INT or T_FLOAT when orjson would write it back as it is, -1 otherwise.
 * Integers: at most 18 digits, not -0. Floats: no exponent, no trailing zero but in "x.0",
 * |x| in [1e-5, 1e16) (orjson writes that range without an exponent), and at most 15
 * significant digits (so the shortest text of the double is these digits), or 16-17 that are
 * the shortest (time.monotonic() differences, zap's seconds). */
static int scan_number(Scan *s) {
    const char *p = s->p;
    Py_ssize_t i = s->pos, n = s->n;
    int neg = 0;
    if (p[i] == '-') {
        neg = 1;
        i++;
    }
    Py_ssize_t int_start = i;
    if (i >= n || p[i] < '0' || p[i] > '9') return -1;
    if (p[i] == '0') {
        i++;
    } else {
        while (i < n && p[i] >= '0' && p[i] <= '9') i++;
    }
    Py_ssize_t int_len = i - int_start;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) return -1;
    if (i >= n || p[i] != '.') {
        if (int_len > 18) return -1;
        if (neg && int_len == 1 && p[int_start] == '0') return -1; /* -0 reads as 0 */
        s->pos = i;
        return T_INT;
    }
    i++;
    Py_ssize_t frac_start = i;
    while (i < n && p[i] >= '0' && p[i] <= '9') i++;
    Py_ssize_t frac_len = i - frac_start;
    if (frac_len == 0) return -1;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) return -1;
    int zero_int = int_len == 1 && p[int_start] == '0';
    int point_zero = frac_len == 1 && p[frac_start] == '0'; /* x.0: how orjson writes an integral float */
    if (p[i - 1] == '0' && !point_zero) return -1;            /* 1.50: orjson writes 1.5 */
    Py_ssize_t significant;
    int longer; /* more than 15 significant digits: orjson writes them back only if they are the shortest */
    if (zero_int) {
        if (point_zero) {
            s->pos = i; /* 0.0 and -0.0 */
            return T_FLOAT;
        }
        Py_ssize_t lead = 0;
        while (lead < frac_len && p[frac_start + lead] == '0') lead++;
        if (lead > 4) return -1; /* below 1e-5: orjson writes 1e-6 */
        significant = frac_len - lead;
        longer = significant > 15;
        if (longer && lead > 3) return -1; /* below 1e-4 repr (below) writes an exponent */
    } else {
        if (int_len > 16) return -1; /* 1e16 and up: orjson writes an exponent */
        significant = int_len + (point_zero ? 0 : frac_len);
        longer = significant > 15 || int_len > 15;
    }
    if (longer && (significant > 17 || !shortest_text(p + s->pos, i - s->pos))) return -1;
    s->pos = i;
    return T_FLOAT;
}

static int key_class(FastPath *fp, const char *p, Py_ssize_t n) {
    uint64_t h = hash_bytes(p, n);
    int cls = cache_get(&fp->keys, p, n, h);
    if (cls >= 0) return cls;
    PyObject *name = PyUnicode_DecodeUTF8(p, n, NULL);
    if (!name) return -1;
    PyObject *r = PyObject_CallOneArg(fp->classify_key, name);
    Py_DECREF(name);
    if (!r) return -1;
    long v = PyLong_AsLong(r);
    Py_DECREF(r);
    if (v == -1 && PyErr_Occurred()) return -1;
    cache_put(&fp->keys, p, n, h, (int)v);
    return (int)v;
}

/* The text of a string token, unescaped, as a Python str. */
static PyObject *string_object(const char *p, const Str *st) {
    if (!st->escaped) return PyUnicode_DecodeUTF8(p + st->start, st->len, NULL);
    char *buf = PyMem_Malloc(st->len ? (size_t)st->len : 1);
    if (!buf) return PyErr_NoMemory();
    Py_ssize_t o = 0;
    for (Py_ssize_t i = st->start; i < st->start + st->len;) {
        char c = p[i];
        if (c != '\\') {
            buf[o++] = c;
            i++;
            continue;
        }
        char e = p[i + 1];
        switch (e) {
            case 'n': buf[o++] = '\n'; i += 2; break;
            case 'r': buf[o++] = '\r'; i += 2; break;
            case 't': buf[o++] = '\t'; i += 2; break;
            case 'b': buf[o++] = '\b'; i += 2; break;
            case 'f': buf[o++] = '\f'; i += 2; break;
            case 'u': buf[o++] = (char)(hexval(p[i + 4]) * 16 + hexval(p[i + 5])); i += 6; break;
            default: buf[o++] = e; i += 2; break; /* \" and \\ */
        }
    }
    PyObject *r = PyUnicode_DecodeUTF8(buf, o, NULL);
    PyMem_Free(buf);
    return r;
}

/* Python's answer to `question` (is this string clean?) for a string token: 1 yes, 0 no, -1
 * error. A yes is remembered in `cache`, so each distinct string is asked once. */
static int asked_clean(Cache *cache, PyObject *question, const char *p, const Str *st) {
    uint64_t h = hash_bytes(p + st->start, st->len);
    if (cache_get(cache, p + st->start, st->len, h) >= 0) return 1;
    PyObject *text = string_object(p, st);
    if (!text) return -1;
    PyObject *r = PyObject_CallOneArg(question, text);
    Py_DECREF(text);
    if (!r) return -1;
    int ok = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (ok > 0) cache_put(cache, p + st->start, st->len, h, 1);
    return ok;
}

/* Whether redaction leaves this string as it is: 1 yes, 0 no (Python redacts), -1 error. */
static int string_clean(FastPath *fp, const char *p, const Str *st, int is_message) {
    if (!fp->redact) return 1;
    if (fp->value_clean != Py_None && st->chars >= fp->min_len) {
        int ok = asked_clean(&fp->values, fp->value_clean, p, st);
        if (ok <= 0) return ok;
    }
    if (is_message && fp->message_clean != Py_None &&
        (memchr(p + st->start, '=', (size_t)st->len) || memchr(p + st->start, ':', (size_t)st->len)))
        return asked_clean(&fp->messages, fp->message_clean, p, st);
    return 1;
}

static int scan_any_number(Scan *s);

/* Scans with this object only check the JSON (redact 0: nothing asked) and take numbers in any
 * spelling: what loguru_flat reads is dropped, or copied into a line that is checked again. */
static FastPath validate_only;

#define FAIL_PY (-2) /* a Python exception is set */
#define FAIL_SLOW (-1)

/* A value at s->pos; its type, FAIL_SLOW, or FAIL_PY. Nested keys are checked for secrets
 * and duplicates, nested strings for patterns, and, inside a text field (`text`), for
 * key=value secrets. */
static int scan_value(Scan *s, int depth, int text) {
    if (s->pos >= s->n) return FAIL_SLOW;
    char c = s->p[s->pos];
    if (c == '"') {
        Str st;
        if (scan_string(s, &st) < 0) return FAIL_SLOW;
        int ok = string_clean(s->fp, s->p, &st, text);
        if (ok < 0) return FAIL_PY;
        return ok ? T_STRING : FAIL_SLOW;
    }
    if (c == '{' || c == '[') {
        if (depth >= MAX_DEPTH) return FAIL_SLOW;
        int object = c == '{';
        char close = object ? '}' : ']';
        Str keys[MAX_NESTED_KEYS];
        int nkeys = 0, child_text = text;
        s->pos++;
        skip_ws(s);
        if (s->pos < s->n && s->p[s->pos] == close) {
            s->pos++;
            return object ? T_OBJECT : T_ARRAY;
        }
        for (;;) {
            if (object) {
                if (s->pos >= s->n || s->p[s->pos] != '"') return FAIL_SLOW;
                Str key;
                if (scan_string(s, &key) < 0 || key.escaped || nkeys >= MAX_NESTED_KEYS) return FAIL_SLOW;
                for (int k = 0; k < nkeys; k++) {
                    if (keys[k].len == key.len && memcmp(s->p + keys[k].start, s->p + key.start, (size_t)key.len) == 0)
                        return FAIL_SLOW; /* a duplicate: the dict keeps the last value */
                }
                keys[nkeys++] = key;
                if (s->fp->redact) {
                    int cls = key_class(s->fp, s->p + key.start, key.len);
                    if (cls < 0) return FAIL_PY;
                    if (cls & K_SECRET) return FAIL_SLOW;
                    child_text = text || (cls & K_TEXT);
                }
                skip_ws(s);
                if (s->pos >= s->n || s->p[s->pos] != ':') return FAIL_SLOW;
                s->pos++;
                skip_ws(s);
            }
            int t = scan_value(s, depth + 1, child_text);
            if (t < 0) return t;
            skip_ws(s);
            if (s->pos >= s->n) return FAIL_SLOW;
            char d = s->p[s->pos++];
            if (d == close) return object ? T_OBJECT : T_ARRAY;
            if (d != ',') return FAIL_SLOW;
            skip_ws(s);
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        int t = s->fp == &validate_only ? scan_any_number(s) : scan_number(s);
        return t < 0 ? FAIL_SLOW : t;
    }
    const char *lit = c == 't' ? "true" : c == 'f' ? "false" : c == 'n' ? "null" : NULL;
    if (!lit) return FAIL_SLOW;
    size_t len = strlen(lit);
    if ((size_t)(s->n - s->pos) < len || memcmp(s->p + s->pos, lit, len) != 0) return FAIL_SLOW;
    s->pos += (Py_ssize_t)len;
    return c == 't' ? T_TRUE : c == 'f' ? T_FALSE : T_NULL;
}

/* ---- time: what logd.timestamps.normalize_time makes of a time an agent sent ---- */

static int two(const char *p) {
    if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9') return -1;
    return (p[0] - '0') * 10 + (p[1] - '0');
}

/* datetime's range (years 1 to 9999), in seconds from the epoch */
#define FIRST_SECOND (-62135596800LL)
/* the years in which a naive time may be read as UTC: those timestamps.local_zone_is_utc checks */
#define NAIVE_FIRST_YEAR 1971
#define NAIVE_LAST_YEAR 2099
#define LAST_SECOND 253402300799LL

static long long floor_div(long long a, long long b) {
    long long q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil) */
static long long days_from_civil(long long y, int m, int d) {
    y -= m <= 2;
    long long era = floor_div(y, 400);
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void put_digits(char *out, long long v, int width) {
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* format_utc of a UTC moment: 27 bytes into out; -1 outside datetime's years (Python: None) */
static int format_moment(long long seconds, long micro, char *out) {
    if (seconds < FIRST_SECOND || seconds > LAST_SECOND) return -1;
    long long days = floor_div(seconds, 86400), rest = seconds - days * 86400;
    /* civil_from_days */
    long long z = days + 719468, era = floor_div(z, 146097), doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1), m = (int)(mp < 10 ? mp + 3 : mp - 9);
    long long y = yoe + era * 400 + (m <= 2);
    put_digits(out, y, 4);
    out[4] = '-';
    put_digits(out + 5, m, 2);
    out[7] = '-';
    put_digits(out + 8, d, 2);
    out[10] = 'T';
    put_digits(out + 11, rest / 3600, 2);
    out[13] = ':';
    put_digits(out + 14, rest / 60 % 60, 2);
    out[16] = ':';
    put_digits(out + 17, rest % 60, 2);
    out[19] = '.';
    put_digits(out + 20, micro, 6);
    out[26] = 'Z';
    return 0;
}

/* A time as text, as timestamps._parse_text reads it (its regular expression, then datetime):
 * YYYY-MM-DD, T or a space, hh:mm:ss, a fraction after "." or "," (any number of digits, cut to
 * microseconds), then Z, z, UTC, +hh, +hhmm or +hh:mm (or -), converted to UTC; without an
 * offset (the machine's local time: python-json-logger's asctime) only when `naive_utc` says the
 * local zone is UTC at every moment of the years taken (timestamps.local_zone_is_utc). 27 bytes
 * into out; -1 for anything else: a naive time elsewhere, whitespace, a number as text, "t"
 * (normalize_time keeps it as sent in one form): Python decides. */
static int canonical_time(const char *p, Py_ssize_t n, char *out, int naive_utc) {
    if (n < 19 || p[4] != '-' || p[7] != '-' || (p[10] != 'T' && p[10] != ' ') || p[13] != ':' || p[16] != ':')
        return -1;
    int y1 = two(p), y2 = two(p + 2), mo = two(p + 5), d = two(p + 8), h = two(p + 11), mi = two(p + 14),
        se = two(p + 17);
    if (y1 < 0 || y2 < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59)
        return -1;
    int year = y1 * 100 + y2;
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int dim = days[mo - 1] + (mo == 2 && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0));
    if (year < 1 || d > dim) return -1;
    Py_ssize_t i = 19;
    long micro = 0;
    if (i < n && (p[i] == '.' || p[i] == ',')) {
        Py_ssize_t first = ++i;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            if (i - first < 6) micro = micro * 10 + (p[i] - '0');
            i++;
        }
        if (i == first) return -1;
        for (Py_ssize_t k = i - first; k < 6; k++) micro *= 10;
    }
    long offset = 0; /* minutes east of UTC */
    Py_ssize_t left = n - i;
    const char *tz = p + i;
    if (left == 0) {
        if (!naive_utc || year < NAIVE_FIRST_YEAR || year > NAIVE_LAST_YEAR) return -1;
    } else if (left == 1 && (tz[0] == 'Z' || tz[0] == 'z')) {
        offset = 0;
    } else if (left == 3 && memcmp(tz, "UTC", 3) == 0) {
        offset = 0;
    } else if ((left == 3 || left == 5 || left == 6) && (tz[0] == '+' || tz[0] == '-')) {
        int oh = two(tz + 1), om = left == 3 ? 0 : two(tz + (left == 6 ? 4 : 3));
        if (oh < 0 || om < 0 || (left == 6 && tz[3] != ':')) return -1;
        offset = oh * 60 + om; /* +05:99 is 6:39, as timedelta(hours=5, minutes=99) */
        if (offset >= 24 * 60) return -1; /* timezone() refuses it */
        if (tz[0] == '-') offset = -offset;
    } else {
        return -1;
    }
    long long seconds = days_from_civil(year, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset * 60LL;
    return format_moment(seconds, micro, out);
}

/* _format_epoch_int: seconds, ms, µs or ns by magnitude, floored to microseconds */
static int epoch_int_time(long long v, char *out) {
    long long m = v < 0 ? -v : v, micros;
    if (m >= 100000000000000000LL) micros = floor_div(v, 1000);
    else if (m >= 100000000000000LL) micros = v;
    else if (m >= 100000000000LL) micros = v * 1000;
    else micros = v * 1000000;
    long long seconds = floor_div(micros, 1000000);
    return format_moment(seconds, (long)(micros - seconds * 1000000), out);
}

/* format_epoch(_epoch_seconds(v)): datetime.fromtimestamp(v, UTC) rounds the fraction to
 * microseconds half to even in doubles (CPython's _PyTime_DoubleToDenominator), done here the
 * same way, operation for operation. */
static int epoch_float_time(double v, char *out) {
    double m = fabs(v);
    if (m >= 1e17) v = v / 1e9;
    else if (m >= 1e14) v = v / 1e6;
    else if (m >= 1e11) v = v / 1e3;
    if (!(v > (double)FIRST_SECOND - 2 && v < (double)LAST_SECOND + 2)) return -1;
    double whole;
    volatile double frac = modf(v, &whole);
    frac *= 1e6;
    volatile double rounded = round(frac);
    if (fabs(frac - rounded) == 0.5) rounded = 2.0 * round(frac / 2.0);
    frac = rounded;
    if (frac >= 1e6) {
        frac -= 1e6;
        whole += 1.0;
    } else if (frac < 0) {
        frac += 1e6;
        whole -= 1.0;
    }
    return format_moment((long long)whole, (long)frac, out);
}

/* ---- one line ---- */

typedef struct {
    Str key;
    Py_ssize_t start, end; /* the value's bytes */
    int type, ws, cls;
    int loose; /* a time alias's number: read as a time (converted), not yet checked as a field (copied) */
} Field;

/* a value without its insignificant whitespace */
static char *copy_compact(char *o, const char *p, Py_ssize_t start, Py_ssize_t end, int ws) {
    if (!ws) {
        memcpy(o, p + start, (size_t)(end - start));
        return o + (end - start);
    }
    int in_string = 0;
    for (Py_ssize_t i = start; i < end; i++) {
        char c = p[i];
        if (in_string) {
            *o++ = c;
            if (c == '\\') {
                *o++ = p[++i];
            } else if (c == '"') {
                in_string = 0;
            }
        } else if (c == '"') {
            *o++ = c;
            in_string = 1;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            *o++ = c;
        }
    }
    return o;
}

/* ---- counts for the metric steps, per run: what AgentMetrics and UsageMetrics would count ---- */

#define NLEVELS 7

typedef struct {
    PyObject *agent_index; /* dict: label (str or None) -> row */
    PyObject *agents;      /* list: [label, [count per level], [count per bucket] or None, [seconds...] or None] */
    PyObject *group_index; /* dict: (ROW_*, label values...) -> row */
    PyObject *groups;      /* list: the usage roles' rows (see usage_row; None where nothing was added) */
} Tally;

static int add_count(PyObject *list, Py_ssize_t i, long long n) {
    PyObject *old = PyList_GET_ITEM(list, i);
    PyObject *sum;
    if (old == Py_None) {
        sum = PyLong_FromLongLong(n);
    } else {
        PyObject *add = PyLong_FromLongLong(n);
        if (!add) return -1;
        sum = PyNumber_Add(old, add);
        Py_DECREF(add);
    }
    if (!sum) return -1;
    PyList_SET_ITEM(list, i, sum);
    Py_DECREF(old);
    return 0;
}

static PyObject *new_list(Py_ssize_t n, PyObject *fill) {
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) PyList_SET_ITEM(list, i, Py_NewRef(fill));
    return list;
}

static PyObject *tally_row(PyObject *index, PyObject *rows, PyObject *key, Py_ssize_t width, PyObject *head) {
    PyObject *found = PyDict_GetItemWithError(index, key);
    if (found) return PyList_GET_ITEM(rows, PyLong_AsSsize_t(found));
    if (PyErr_Occurred()) return NULL;
    PyObject *row = new_list(width, Py_None);
    PyObject *at = PyLong_FromSsize_t(PyList_GET_SIZE(rows));
    if (!row || !at || PyDict_SetItem(index, key, at) < 0 || PyList_Append(rows, row) < 0) {
        Py_XDECREF(row);
        Py_XDECREF(at);
        return NULL;
    }
    Py_DECREF(at);
    Py_DECREF(row);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(head); i++) {
        PyObject *old = PyList_GET_ITEM(row, i);
        PyList_SET_ITEM(row, i, Py_NewRef(PyTuple_GET_ITEM(head, i)));
        Py_DECREF(old);
    }
    return row; /* borrowed from rows */
}

/* What the metric steps read of one record, found before anything is counted. */
typedef struct {
    PyObject *label, *second; /* the label's and the sums' second label's text, new references (None: absent) */
    int has_seconds;
    double seconds;
    int has_tokens;
    long long tokens[3];
    int found[3];
    PyObject *name;           /* CountNames: the text counted (NULL: none), a new reference */
    int failed;               /* ... its `failed` key's value is truthy */
    PyObject *observed_label; /* ObserveNumber: the label's text (NULL: not observed), a new reference */
    double observed;
} Seen;

static void seen_clear(Seen *m) {
    Py_CLEAR(m->label);
    Py_CLEAR(m->second);
    Py_CLEAR(m->name);
    Py_CLEAR(m->observed_label);
}

static int direction_of(FastPath *fp, const char *p, Py_ssize_t n) {
    PyObject *name = PyUnicode_DecodeUTF8(p, n, NULL);
    if (!name) return -2;
    PyObject *d = PyDict_GetItemWithError(fp->directions, name);
    Py_DECREF(name);
    if (!d) return PyErr_Occurred() ? -2 : -1;
    return (int)PyLong_AsLong(d);
}

/* Skip one validated JSON value (not a number) at s->pos. */
static void skip_value(Scan *s) {
    Str st;
    char c = s->p[s->pos];
    if (c == '"') {
        scan_string(s, &st);
        return;
    }
    if (c == '{' || c == '[') {
        int depth = 0;
        while (s->pos < s->n) {
            char d = s->p[s->pos];
            if (d == '"') {
                scan_string(s, &st);
                continue;
            }
            s->pos++;
            if (d == '{' || d == '[') depth++;
            else if ((d == '}' || d == ']') && --depth == 0) return;
        }
        return;
    }
    while (s->pos < s->n && s->p[s->pos] >= 'a' && s->p[s->pos] <= 'z') s->pos++; /* true, false, null */
}

static long long parse_int(const char *p, Py_ssize_t n) {
    char buf[24];
    memcpy(buf, p, (size_t)n);
    buf[n] = 0;
    return strtoll(buf, NULL, 10);
}

static double parse_float(const char *p, Py_ssize_t n) {
    char buf[48];
    if (n > 47) n = 47;
    memcpy(buf, p, (size_t)n);
    buf[n] = 0;
    return PyOS_string_to_double(buf, NULL, NULL);
}

/* tokens as UsageMetrics._flat reads them: 0 fine, FAIL_SLOW for a float (sums of floats depend
 * on their order, so Python adds those), FAIL_PY on error. */
static int read_tokens(FastPath *fp, const char *p, Field *f, Seen *m) {
    if (f->type == T_INT) {
        long long v = parse_int(p + f->start, f->end - f->start);
        if (v >= 0) {
            m->has_tokens = 1;
            m->found[2] = 1;
            m->tokens[2] = v;
        }
        return 0;
    }
    if (f->type == T_FLOAT) return FAIL_SLOW;
    if (f->type != T_OBJECT) return 0; /* text, lists, booleans, null: nothing counted */
    m->has_tokens = 1;
    Scan s = {p, f->start + 1, f->end, 0, fp};
    skip_ws(&s);
    while (s.pos < s.n && p[s.pos] == '"') {
        Str key;
        scan_string(&s, &key);
        skip_ws(&s);
        s.pos++; /* : */
        skip_ws(&s);
        Py_ssize_t start = s.pos;
        char c = p[start];
        int d = direction_of(fp, p + key.start, key.len);
        if (d == -2) return FAIL_PY;
        if (c == '-' || (c >= '0' && c <= '9')) {
            int t = scan_number(&s);
            if (d >= 0 && !m->found[d]) {
                if (t == T_FLOAT) return FAIL_SLOW;
                long long v = parse_int(p + start, s.pos - start);
                if (v >= 0) {
                    m->found[d] = 1;
                    m->tokens[d] = v;
                }
            }
        } else {
            skip_value(&s);
        }
        skip_ws(&s);
        if (s.pos < s.n && p[s.pos] == ',') {
            s.pos++;
            skip_ws(&s);
        }
    }
    return 0;
}

/* A number >= 0 at f divided by scale, as Python divides it: 1 (in *out), 0 none (absent, not a
 * number, negative), or FAIL_SLOW / FAIL_PY. */
static int read_number(const char *p, const Field *f, double scale, double *out) {
    if (!f) return 0;
    if (f->type == T_INT) {
        long long v = parse_int(p + f->start, f->end - f->start);
        if (v > (1LL << 53) || v < -(1LL << 53)) return FAIL_SLOW; /* Python divides exactly */
        if (v < 0) return 0;
        *out = (double)v / scale;
        return 1;
    }
    if (f->type == T_FLOAT) {
        double v = parse_float(p + f->start, f->end - f->start);
        if (v == -1.0 && PyErr_Occurred()) return FAIL_PY;
        if (v < 0) return 0;
        *out = v / scale;
        return 1;
    }
    return 0;
}

/* The text of a string field (new reference), Py_None for null or absent (a new reference too). */
static PyObject *text_of(FastPath *fp, const char *p, const Field *f) {
    if (!f || f->type != T_STRING) return Py_NewRef(Py_None);
    Scan s = {p, f->start, f->end, 0, fp};
    Str st;
    scan_string(&s, &st);
    return string_object(p, &st);
}

/* Python's bool() of a field's value (a validated token). */
static int truthy(const char *p, const Field *f) {
    switch (f->type) {
        case T_STRING: return f->end - f->start > 2;
        case T_TRUE: return 1;
        case T_FALSE: case T_NULL: return 0;
        case T_INT: case T_FLOAT:
            for (Py_ssize_t i = f->start; i < f->end; i++) {
                if (p[i] >= '1' && p[i] <= '9') return 1;
            }
            return 0;
        default: { /* an object or a list: empty or not */
            Py_ssize_t i = f->start + 1;
            while (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') i++;
            return p[i] != '}' && p[i] != ']';
        }
    }
}

/* Everything the metric steps read of a record with these fields, or FAIL_SLOW / FAIL_PY. */
static int read_metrics(FastPath *fp, const char *p, Field *fields, int nf, Seen *m) {
    memset(m, 0, sizeof(*m));
    /* the keys the counting steps named (AgentMetrics: "agent" and "duration_ms"; UsageMetrics:
     * "tokens" summed by "agent" and "model", "tool" calls failed by "error", "latency_ms" by
     * "model"); one key may serve several roles */
    Field *label = NULL, *second = NULL, *number = NULL, *sum = NULL, *name = NULL, *failed = NULL,
          *observe = NULL, *observe_label = NULL;
    for (int j = 0; j < nf; j++) {
        const char *k = p + fields[j].key.start;
        Py_ssize_t kl = fields[j].key.len;
        Field *f = &fields[j];
        if (name_is(&fp->label, k, kl)) label = f;
        if (name_is(&fp->sum_label, k, kl)) second = f;
        if (name_is(&fp->histogram, k, kl)) number = f;
        if (name_is(&fp->sum, k, kl)) sum = f;
        if (name_is(&fp->names, k, kl)) name = f;
        if (name_is(&fp->failed, k, kl)) failed = f;
        if (name_is(&fp->observe, k, kl)) observe = f;
        if (name_is(&fp->observe_label, k, kl)) observe_label = f;
    }
    /* a label that is not text is labelled by its str(): Python does that */
    Field *thin = NULL;
    for (int j = 0; j < nf && fp->thin.data; j++) {
        if (name_is(&fp->thin, p + fields[j].key.start, fields[j].key.len)) thin = &fields[j];
    }
    Field *labels[] = {label, second, observe_label, thin};
    for (int i = 0; i < 4; i++) {
        if (labels[i] && labels[i]->type != T_STRING && labels[i]->type != T_NULL) return FAIL_SLOW;
    }
    int r = read_number(p, number, fp->scale, &m->seconds);
    if (r < 0) return r;
    m->has_seconds = r;
    double observed = 0;
    r = observe_label && observe_label->type == T_STRING ? read_number(p, observe, fp->observe_scale, &observed) : 0;
    if (r < 0) return r;
    if (sum) {
        int t = read_tokens(fp, p, sum, m);
        if (t < 0) return t;
    }
    m->label = text_of(fp, p, label);
    m->second = text_of(fp, p, second);
    if (!m->label || !m->second) goto error;
    if (r) {
        m->observed = observed;
        m->observed_label = text_of(fp, p, observe_label);
        if (!m->observed_label) goto error;
    }
    if (name && name->type == T_STRING && name->end - name->start > 2) { /* text, not empty */
        m->name = text_of(fp, p, name);
        if (!m->name) goto error;
        m->failed = failed != NULL && truthy(p, failed);
    }
    return 0;
error:
    seen_clear(m);
    return FAIL_PY;
}

/* `value` into a histogram row's counts per bucket (at `counts`) and its list of values (the
 * next item), made on first use. */
static int observe_into(PyObject *row, Py_ssize_t counts, const double *buckets, Py_ssize_t nbuckets, double value) {
    if (PyList_GET_ITEM(row, counts) == Py_None) {
        PyObject *zero = PyLong_FromLong(0);
        PyObject *per_bucket = zero ? new_list(nbuckets + 1, zero) : NULL;
        Py_XDECREF(zero);
        PyObject *values = PyList_New(0);
        if (!per_bucket || !values) {
            Py_XDECREF(per_bucket);
            Py_XDECREF(values);
            return -1;
        }
        PyList_SetItem(row, counts, per_bucket);
        PyList_SetItem(row, counts + 1, values);
    }
    Py_ssize_t b = 0; /* bisect_left */
    while (b < nbuckets && buckets[b] < value) b++;
    if (add_count(PyList_GET_ITEM(row, counts), b, 1) < 0) return -1;
    PyObject *v = PyFloat_FromDouble(value);
    if (!v || PyList_Append(PyList_GET_ITEM(row, counts + 1), v) < 0) {
        Py_XDECREF(v);
        return -1;
    }
    Py_DECREF(v);
    return 0;
}

/* The row of a usage role (ROW_*) for these label values, made on first use: the rows of all
 * such roles in one list, in the order their keys first appeared, as Python meets them record
 * by record (so capped labels get their places in the same order). */
#define ROW_SUMS 0     /* [0, label, second label, input, output, total] */
#define ROW_NAMES 1    /* [1, label, name, failed, count] */
#define ROW_OBSERVED 2 /* [2, label, [count per bucket], [values...]] */

static PyObject *usage_row(Tally *t, Py_ssize_t width, int role, PyObject *a, PyObject *b, PyObject *c) {
    PyObject *tag = PyLong_FromLong(role);
    if (!tag) return NULL;
    PyObject *key = c ? PyTuple_Pack(4, tag, a, b, c) : b ? PyTuple_Pack(3, tag, a, b) : PyTuple_Pack(2, tag, a);
    Py_DECREF(tag);
    if (!key) return NULL;
    PyObject *row = tally_row(t->group_index, t->groups, key, width, key);
    Py_DECREF(key);
    return row;
}

static int tally_count(FastPath *fp, Tally *t, Seen *m, Py_ssize_t level);

/* One record's counts, in the order UsageMetrics._flat counts them: tokens, the name, the value. */
static int tally_add(FastPath *fp, Tally *t, Seen *m, Py_ssize_t level) {
    if (fp->count && tally_count(fp, t, m, level) < 0) return -1;
    if (m->has_tokens) { /* the sums label the pair even when no field counts (UsageMetrics does) */
        PyObject *g = usage_row(t, 6, ROW_SUMS, m->label, m->second, NULL);
        if (!g) return -1;
        if (!m->found[0] && !m->found[1]) {
            if (m->found[2] && add_count(g, 5, m->tokens[2]) < 0) return -1;
        } else {
            if (m->found[0] && add_count(g, 3, m->tokens[0]) < 0) return -1;
            if (m->found[1] && add_count(g, 4, m->tokens[1]) < 0) return -1;
        }
    }
    if (m->name) {
        int failed = m->failed || ((fp->failed_ranks >> level) & 1);
        PyObject *row = usage_row(t, 5, ROW_NAMES, m->label, m->name, failed ? Py_True : Py_False);
        if (!row || add_count(row, 4, 1) < 0) return -1;
    }
    if (m->observed_label) {
        PyObject *row = usage_row(t, 4, ROW_OBSERVED, m->observed_label, NULL, NULL);
        if (!row || observe_into(row, 2, fp->observe_buckets, fp->n_observe_buckets, m->observed) < 0) return -1;
    }
    return 0;
}

/* CountByLevel: the record under its label and level, and its histogram value */
static int tally_count(FastPath *fp, Tally *t, Seen *m, Py_ssize_t level) {
    PyObject *head = PyTuple_Pack(1, m->label);
    if (!head) return -1;
    PyObject *row = tally_row(t->agent_index, t->agents, m->label, 4, head);
    Py_DECREF(head);
    if (!row) return -1;
    if (PyList_GET_ITEM(row, 1) == Py_None) {
        PyObject *zero = PyLong_FromLong(0);
        PyObject *levels = zero ? new_list(NLEVELS, zero) : NULL;
        Py_XDECREF(zero);
        if (!levels) return -1;
        PyList_SetItem(row, 1, levels);
    }
    if (add_count(PyList_GET_ITEM(row, 1), level, 1) < 0) return -1;
    if (m->has_seconds && observe_into(row, 2, fp->buckets, fp->nbuckets, m->seconds) < 0) return -1;
    return 0;
}

typedef struct {
    PyObject *out; /* bytes being filled */
    Py_ssize_t used;
    char low[27], high[27];
    int have_bounds;
    PyObject *handed; /* list: where in out each line whose record a step is handed starts */
    PyObject *thin;   /* list: per line written, (where it starts, thin key's text, level, message) */
    char *scratch; /* a line with escapes, as orjson would write its strings (canonical_copy) */
    Py_ssize_t scratch_cap;
    char *flat; /* loguru's envelope as the flat record it stands for (loguru_flat) */
    Py_ssize_t flat_cap;
    PyObject *selected;   /* list: per entry of a QuietEntries run, its shape (EntryRule.shape, session) */
    PyObject *runs;       /* list: per run hook among them, (hook, session, agent_id, agent, time) */
    PyObject *last_shape; /* the last entry's shape: the next of its session shares it */
} Output;

/* What the steps that keep or drop records (Thins) decide a written line by, into o->thin. */
static int thin_entry(FastPath *fp, Output *o, const char *p, Field *fields, int nf, int m_i, PyObject *level) {
    Field *key = NULL;
    for (int j = 0; j < nf; j++) {
        if (name_is(&fp->thin, p + fields[j].key.start, fields[j].key.len)) key = &fields[j];
    }
    PyObject *text = text_of(fp, p, key); /* read_metrics let only text and null through */
    PyObject *message = m_i < 0 ? PyUnicode_FromStringAndSize("", 0) : text_of(fp, p, &fields[m_i]);
    PyObject *entry = text && message ? Py_BuildValue("(nOOO)", o->used, text, level, message) : NULL;
    Py_XDECREF(text);
    Py_XDECREF(message);
    if (!entry) return -1;
    int r = PyList_Append(o->thin, entry);
    Py_DECREF(entry);
    return r;
}

static int reserve(Output *o, Py_ssize_t more) {
    Py_ssize_t cap = PyBytes_GET_SIZE(o->out);
    if (o->used + more <= cap) return 0;
    Py_ssize_t want = cap * 2 > o->used + more ? cap * 2 : o->used + more;
    return _PyBytes_Resize(&o->out, want);
}

/* ---- escapes: \uXXXX (json.dumps' ensure_ascii, python-json-logger, structlog) and \/ ---- */

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A buffer of at least `need` bytes: 0, or -1 with MemoryError set. */
static int grow(char **buf, Py_ssize_t *cap, Py_ssize_t need) {
    if (*cap >= need) return 0;
    char *bigger = PyMem_Realloc(*buf, (size_t)need);
    if (!bigger) {
        PyErr_NoMemory();
        return -1;
    }
    *buf = bigger;
    *cap = need;
    return 0;
}

/* a code point as orjson writes it in a string: UTF-8, or its escape */
static char *put_code_point(char *o, unsigned cp) {
    static const char hex[] = "0123456789abcdef";
    if (cp == '"' || cp == '\\') {
        *o++ = '\\';
        *o++ = (char)cp;
    } else if (cp < 0x20) {
        *o++ = '\\';
        switch (cp) {
            case '\b': *o++ = 'b'; break;
            case '\t': *o++ = 't'; break;
            case '\n': *o++ = 'n'; break;
            case '\f': *o++ = 'f'; break;
            case '\r': *o++ = 'r'; break;
            default:
                memcpy(o, "u00", 3);
                o += 3;
                *o++ = hex[cp >> 4];
                *o++ = hex[cp & 15];
        }
    } else if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* The line with each string as orjson writes it, into o->scratch: \uXXXX decoded (a surrogate
 * pair to one character), \/ to /, and what orjson escapes escaped its way. Every other byte is
 * copied, so the copy is the same JSON value (or invalid where the line is), and never longer.
 * Returns its length; 0 when the line has neither escape (it is read as it is); -1 for a lone
 * surrogate, an unknown escape or a run of 20 digits in a string as sent (scan_string's rule,
 * which the copy could no longer see): Python; -2 out of memory. */
static Py_ssize_t canonical_copy(Output *o, const char *p, Py_ssize_t n, Py_ssize_t at) {
    for (;;) {
        if (at + 1 >= n) return 0;
        if (p[at + 1] == 'u' || p[at + 1] == '/') break;
        const char *next = memchr(p + at + 2, '\\', (size_t)(n - at - 2));
        if (!next) return 0;
        at = next - p;
    }
    if (grow(&o->scratch, &o->scratch_cap, n) < 0) return -2;
    char *w = o->scratch;
    int in_string = 0, digits = 0;
    for (Py_ssize_t i = 0; i < n;) {
        char c = p[i];
        if (c != '\\' || !in_string) {
            digits = in_string && c >= '0' && c <= '9' ? digits + 1 : 0; /* numbers: scan_number's rules */
            if (digits >= 20) return -1;
            if (c == '"') in_string = !in_string;
            *w++ = c;
            i++;
            continue;
        }
        if (i + 1 >= n) return -1;
        char e = p[i + 1];
        Py_ssize_t len = 2;
        if (e == 'u') {
            int cp = i + 6 <= n ? hex4(p + i + 2) : -1;
            if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) return -1;
            len = 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* a pair, or a lone surrogate (Python) */
                int low = i + 12 <= n && p[i + 6] == '\\' && p[i + 7] == 'u' ? hex4(p + i + 8) : -1;
                if (low < 0xDC00 || low > 0xDFFF) return -1;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                len = 12;
            }
            w = put_code_point(w, (unsigned)cp);
        } else if (e == '/') {
            *w++ = '/';
        } else if (e == '"' || e == '\\' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
            *w++ = '\\';
            *w++ = e;
        } else {
            return -1;
        }
        for (Py_ssize_t k = i; k < i + len; k++) { /* the escape's own digits count, as record.py counts bytes */
            digits = p[k] >= '0' && p[k] <= '9' ? digits + 1 : 0;
            if (digits >= 20) return -1;
        }
        i += len;
    }
    return w - o->scratch;
}

#define LINE_SLOW 0
#define LINE_KEPT 1
#define LINE_BELOW 2
#define LINE_OTHER 3 /* a line of the other kind of run (see one_line's `read`) */
#define LINE_ERROR (-1)

/* ---- loguru's serialize=True envelope: {"text": ..., "record": {...}} ---- */


typedef struct {
    Str key;
    Py_ssize_t start, end;
    int type;
} Member;

/* Past one value at s->pos that object_members has checked already; its type. */
static int skip_checked(Scan *s) {
    const char *p = s->p;
    Py_ssize_t i = s->pos;
    char first = p[i];
    int depth = 0, type = first == '"' ? T_STRING : first == '{' ? T_OBJECT : first == '[' ? T_ARRAY
                        : first == 't' ? T_TRUE : first == 'f' ? T_FALSE : first == 'n' ? T_NULL : T_INT;
    for (;;) {
        char c = p[i];
        if (c == '"') {
            for (i++; p[i] != '"'; i += p[i] == '\\' ? 2 : 1) {}
            i++;
        } else if (c == '{' || c == '[') {
            depth++;
            i++;
        } else if (c == '}' || c == ']') {
            depth--;
            i++;
        } else if (depth > 0) {
            i++;
            continue;
        } else { /* a number or a literal */
            for (; i < s->n && p[i] != ',' && p[i] != '}' && p[i] != ']' && p[i] != ' ' && p[i] != '\t' &&
                   p[i] != '\n' && p[i] != '\r'; i++) {
                if (type == T_INT && (p[i] == '.' || p[i] == 'e' || p[i] == 'E')) type = T_FLOAT;
            }
        }
        if (depth == 0) break;
    }
    s->pos = i;
    return type;
}

/* The members of the object at s->pos, their values checked (or, `checked`, checked before);
 * their count, or -1 (not JSON, a duplicate or escaped key, more than max members). */
static int object_members(Scan *s, Member *m, int max, int checked) {
    s->pos++;
    skip_ws(s);
    if (s->pos < s->n && s->p[s->pos] == '}') {
        s->pos++;
        return 0;
    }
    for (int count = 0;;) {
        if (count >= max || s->pos >= s->n || s->p[s->pos] != '"') return -1;
        Member *e = &m[count];
        if (scan_string(s, &e->key) < 0 || e->key.escaped) return -1;
        for (int j = 0; j < count; j++) {
            if (m[j].key.len == e->key.len && memcmp(s->p + m[j].key.start, s->p + e->key.start, (size_t)e->key.len) == 0)
                return -1;
        }
        skip_ws(s);
        if (s->pos >= s->n || s->p[s->pos] != ':') return -1;
        s->pos++;
        skip_ws(s);
        e->start = s->pos;
        e->type = checked ? skip_checked(s) : scan_value(s, 2, 0);
        if (e->type < 0) return -1;
        e->end = s->pos;
        count++;
        skip_ws(s);
        if (s->pos >= s->n) return -1;
        char d = s->p[s->pos++];
        if (d == '}') return count;
        if (d != ',') return -1;
        skip_ws(s);
    }
}

static const Member *member(const char *p, const Member *m, int count, const char *name) {
    size_t len = strlen(name);
    for (int i = 0; i < count; i++) {
        if ((size_t)m[i].key.len == len && memcmp(p + m[i].key.start, name, len) == 0) return &m[i];
    }
    return NULL;
}

/* A member of a nested object (`name` of the object under `outer`), or NULL. */
static const Member *inner_member(const char *p, const Member *outer, const char *name, Member *room, int max) {
    if (!outer || outer->type != T_OBJECT) return NULL;
    Scan s = {p, outer->start, outer->end, 0, &validate_only};
    int count = object_members(&s, room, max, 1);
    return count < 0 ? NULL : member(p, room, count, name);
}

static char *put(char *w, const char *text) {
    size_t len = strlen(text);
    memcpy(w, text, len);
    return w + len;
}

static char *put_span(char *w, const char *p, Py_ssize_t start, Py_ssize_t end) {
    memcpy(w, p + start, (size_t)(end - start));
    return w + (end - start);
}

/* The flat record record._from_loguru makes of the envelope, as a line, into o->flat: time
 * (the timestamp), level (its name), message, logger, caller ("path:line"), function, process
 * (its id), thread (its name), then the extra fields. Its length, or -1 when the envelope is
 * in any other shape (an exception, a time without its timestamp, an extra field named like
 * one of those: Python), -2 out of memory. */
static Py_ssize_t loguru_flat(Output *o, const char *p, Py_ssize_t n) {
    Scan s = {p, 0, n, 0, &validate_only};
    Member top[2], rec[24], room[8], extra[MAX_TOP];
    if (object_members(&s, top, 2, 0) != 2 || s.pos != n) return -1; /* checks the whole line */
    const Member *text = member(p, top, 2, "text"), *record = member(p, top, 2, "record");
    if (!text || !record || text->type != T_STRING || record->type != T_OBJECT) return -1;
    Scan r = {p, record->start, record->end, 0, &validate_only};
    int count = object_members(&r, rec, 24, 1);
    if (count < 0) return -1;
    const Member *message = member(p, rec, count, "message"), *name = member(p, rec, count, "name"),
                 *line = member(p, rec, count, "line"), *function = member(p, rec, count, "function"),
                 *exception = member(p, rec, count, "exception"), *extras = member(p, rec, count, "extra");
    if (!message || message->type != T_STRING || !line || line->type != T_INT || !function ||
        function->type != T_STRING || (exception && exception->type != T_NULL) || !extras ||
        extras->type != T_OBJECT || (name && name->type != T_STRING && name->type != T_NULL))
        return -1;
    Member time, level, path, process, thread;
    const Member *found;
    if (!(found = inner_member(p, member(p, rec, count, "time"), "timestamp", room, 8)) ||
        (found->type != T_INT && found->type != T_FLOAT))
        return -1;
    time = *found;
    if (!(found = inner_member(p, member(p, rec, count, "level"), "name", room, 8)) || found->type != T_STRING)
        return -1;
    level = *found;
    if (!(found = inner_member(p, member(p, rec, count, "file"), "path", room, 8)) || found->type != T_STRING ||
        found->end - found->start == 2) /* "": its name, as `or` goes on */
        return -1;
    path = *found;
    if (!(found = inner_member(p, member(p, rec, count, "process"), "id", room, 8))) return -1;
    process = *found;
    if (!(found = inner_member(p, member(p, rec, count, "thread"), "name", room, 8))) return -1;
    thread = *found;
    Scan e = {p, extras->start, extras->end, 0, &validate_only};
    int nextra = object_members(&e, extra, MAX_TOP, 1);
    if (nextra < 0) return -1;
    static const char *const taken[] = {"time", "level", "message", "logger", "caller", "function", "process",
                                        "thread", "error", "stack"};
    for (int i = 0; i < nextra; i++) {
        for (size_t t = 0; t < sizeof(taken) / sizeof(taken[0]); t++) {
            if (member(p, &extra[i], 1, taken[t])) return -1; /* renamed extra_<key>: Python */
        }
    }
    if (grow(&o->flat, &o->flat_cap, n + 128) < 0) return -2; /* its keys are no longer than the envelope's */
    char *w = o->flat;
    w = put(w, "{\"time\":");
    w = put_span(w, p, time.start, time.end);
    w = put(w, ",\"level\":");
    w = put_span(w, p, level.start, level.end);
    w = put(w, ",\"message\":");
    w = put_span(w, p, message->start, message->end);
    if (name && name->type == T_STRING) {
        w = put(w, ",\"logger\":");
        w = put_span(w, p, name->start, name->end);
    }
    w = put(w, ",\"caller\":");
    w = put_span(w, p, path.start, path.end - 1); /* the path's text, then :line inside its quotes */
    *w++ = ':';
    w = put_span(w, p, line->start, line->end);
    *w++ = '"';
    if (function->end - function->start > 2) { /* only when not empty */
        w = put(w, ",\"function\":");
        w = put_span(w, p, function->start, function->end);
    }
    w = put(w, ",\"process\":");
    w = put_span(w, p, process.start, process.end);
    w = put(w, ",\"thread\":");
    w = put_span(w, p, thread.start, thread.end);
    for (int i = 0; i < nextra; i++) {
        *w++ = ',';
        w = put_span(w, p, extra[i].key.start - 1, extra[i].key.start + extra[i].key.len + 1);
        *w++ = ':';
        w = put_span(w, p, extra[i].start, extra[i].end);
    }
    *w++ = '}';
    return w - o->flat;
}

/* The keys logd.record.normalize_object reads the time, level and message from: the canonical
 * key, else the first alias present (in this order); structlog's `event` only when text. The
 * aliases not taken stay fields. */
enum {
    R_TIME, R_LEVEL, R_MESSAGE,
    R_TIME_ALIAS, /* + ts, timestamp, @timestamp, asctime, t */
    R_LEVEL_ALIAS = R_TIME_ALIAS + 5, /* + levelname, severity, lvl */
    R_MSG = R_LEVEL_ALIAS + 3,
    R_EVENT,
    NROLES
};

static int role_of(const char *k, Py_ssize_t kl) {
#define IS(word) (memcmp(k, word, sizeof(word) - 1) == 0)
    switch (kl) {
        case 1: return k[0] == 't' ? R_TIME_ALIAS + 4 : -1;
        case 2: return IS("ts") ? R_TIME_ALIAS : -1;
        case 3: return IS("msg") ? R_MSG : IS("lvl") ? R_LEVEL_ALIAS + 2 : -1;
        case 4: return IS("time") ? R_TIME : -1;
        case 5: return IS("level") ? R_LEVEL : IS("event") ? R_EVENT : -1;
        case 7: return IS("message") ? R_MESSAGE : IS("asctime") ? R_TIME_ALIAS + 3 : -1;
        case 8: return IS("severity") ? R_LEVEL_ALIAS + 1 : -1;
        case 9: return IS("timestamp") ? R_TIME_ALIAS + 1 : IS("levelname") ? R_LEVEL_ALIAS : -1;
        case 10: return IS("@timestamp") ? R_TIME_ALIAS + 2 : -1;
        default: return -1;
    }
#undef IS
}

static int first_present(const int *at, int from, int count) {
    for (int r = from; r < from + count; r++) {
        if (at[r] >= 0) return at[r];
    }
    return -1;
}

/* A JSON number in any spelling, as a time reads it (converted, not copied): T_INT or T_FLOAT,
 * or -1; at most 40 bytes. (A run of 20 digits makes record.py read the line with the standard
 * library: the same float, and an integer no time takes, as strtoll says in field_time.) */
static int scan_any_number(Scan *s) {
    const char *p = s->p;
    Py_ssize_t i = s->pos, n = s->n;
    int type = T_INT;
    if (i < n && p[i] == '-') i++;
    if (i >= n || p[i] < '0' || p[i] > '9' || (p[i] == '0' && i + 1 < n && p[i + 1] >= '0' && p[i + 1] <= '9'))
        return -1;
    for (int part = 0; part < 3; part++) {
        if (part == 1) {
            if (i >= n || p[i] != '.') continue;
            i++;
            type = T_FLOAT;
        } else if (part == 2) {
            if (i >= n || (p[i] != 'e' && p[i] != 'E')) break;
            i++;
            type = T_FLOAT;
            if (i < n && (p[i] == '+' || p[i] == '-')) i++;
        }
        Py_ssize_t first = i;
        while (i < n && p[i] >= '0' && p[i] <= '9') i++;
        if (i == first) return -1;
    }
    if (i - s->pos > 40) return -1;
    s->pos = i;
    return type;
}

/* The canonical time of the field taken as the time: 0, or -1 (Python decides). */
static int field_time(const char *p, const Field *f, char *out, int naive_utc) {
    Py_ssize_t len = f->end - f->start;
    if (f->type == T_STRING) {
        if (memchr(p + f->start, '\\', (size_t)len)) return -1;
        return canonical_time(p + f->start + 1, len - 2, out, naive_utc);
    }
    char buf[48];
    memcpy(buf, p + f->start, (size_t)len); /* scan_any_number: at most 40 bytes */
    buf[len] = 0;
    if (f->type == T_INT) {
        errno = 0;
        long long v = strtoll(buf, NULL, 10);
        if (errno) return -1; /* beyond 64 bits: a year past 9999 anyway */
        return epoch_int_time(v, out);
    }
    if (f->type != T_FLOAT) return -1;
    double v = PyOS_string_to_double(buf, NULL, NULL); /* correctly rounded, as orjson reads it */
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return epoch_float_time(v, out);
}

/* canonical_level of a whole number: zerolog's -1..5, else pino's thresholds */
static const char *numeric_level(long long v) {
    static const char *const zerolog[] = {"trace", "debug", "info", "warn", "error", "fatal", "panic"};
    if (v >= -1 && v <= 5) return zerolog[v + 1];
    return v >= 60 ? "fatal" : v >= 50 ? "error" : v >= 40 ? "warn" : v >= 30 ? "info" : v >= 20 ? "debug" : "trace";
}

/* The canonical level (borrowed from the aliases dict) of the field taken as the level, as
 * normalize_object finds it: the spelling, else its lower case (ASCII only; Python's lower()
 * maps some other letters to ASCII ones), else a number's level. NULL: Python decides (an
 * error set, or not). */
static PyObject *field_level(FastPath *fp, const char *p, const Field *f) {
    PyObject *spelling;
    if (!f) {
        spelling = PyUnicode_FromString("info");
    } else if (f->type == T_INT) {
        spelling = PyUnicode_FromString(numeric_level(strtoll(p + f->start, NULL, 10)));
    } else {
        const char *t = p + f->start + 1;
        Py_ssize_t len = f->end - f->start - 2;
        if (memchr(t, '\\', (size_t)len)) return NULL;
        spelling = PyUnicode_DecodeUTF8(t, len, NULL);
        if (!spelling) return NULL;
        PyObject *level = PyDict_GetItemWithError(fp->aliases, spelling);
        Py_DECREF(spelling);
        if (level || PyErr_Occurred() || len > 32) return level;
        char lower[32];
        int changed = 0;
        for (Py_ssize_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)t[i];
            if (c >= 0x80) return NULL;
            lower[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            changed |= lower[i] != t[i];
        }
        if (!changed) return NULL;
        spelling = PyUnicode_DecodeUTF8(lower, len, NULL);
    }
    if (!spelling) return NULL;
    PyObject *level = PyDict_GetItemWithError(fp->aliases, spelling);
    Py_DECREF(spelling);
    return level;
}

/* ---- QuietEntries: trace entries no step needs a record of ---- */

typedef struct {
    const Field *hook, *session, *agent_id, *agent;
    int hook_index;
} EntryFields;

/* Whether one of `count` members is named `name` (not NUL-terminated: see member()). */
static int member_named(const char *p, const Member *m, int count, const char *name, Py_ssize_t len) {
    for (int i = 0; i < count; i++) {
        if (m[i].key.len == len && memcmp(p + m[i].key.start, name, (size_t)len) == 0) return 1;
    }
    return 0;
}

/* null, false, "", {} or []: what semantics.error_text reads as no error (a zero too, which the
 * steps decide: not taken as empty here) */
static int empty_value(const char *p, const Member *m) {
    switch (m->type) {
        case T_NULL:
        case T_FALSE: return 1;
        case T_STRING: return m->end - m->start == 2;
        case T_OBJECT:
        case T_ARRAY: {
            Scan s = {p, m->start + 1, m->end, 0, &validate_only};
            skip_ws(&s);
            return s.pos == m->end - 1;
        }
        default: return 0;
    }
}

/* Whether a line a step reads, with these fields, is a quiet entry (EntryRule): 1 yes, `e` filled;
 * 0 no (its record goes to the steps). The level is checked by one_line. */
static int entry_fields(const FastPath *fp, const char *p, const Field *fields, int nf, EntryFields *e) {
    const EntryRule *rule = &fp->entries;
    const Field *nested = NULL, *type = NULL, *result = NULL;
    memset(e, 0, sizeof(*e));
    for (int j = 0; j < nf; j++) {
        const Field *f = &fields[j];
        if (f->cls & K_FULL) return 0;
        const char *k = p + f->key.start;
        Py_ssize_t kl = f->key.len;
        if (name_is(&rule->hook, k, kl)) e->hook = f;
        else if (name_is(&rule->session, k, kl)) e->session = f;
        else if (name_is(&rule->agent_id, k, kl)) e->agent_id = f;
        else if (name_is(&rule->agent, k, kl)) e->agent = f;
        else if (name_is(&rule->nested, k, kl)) nested = f;
        else if (name_is(&rule->type, k, kl)) type = f;
        else if (name_is(&rule->result, k, kl)) result = f;
    }
    /* text, not empty: the entry's session (a string token's raw content is between its quotes) */
    if (!e->hook || e->hook->type != T_STRING || !e->session || e->session->type != T_STRING ||
        e->session->end - e->session->start <= 2)
        return 0;
    e->hook_index = -1;
    for (int i = 0; i < rule->nhooks; i++) { /* an escaped spelling is no hook: canonical_copy left no \uXXXX */
        if (name_is(&rule->hooks[i], p + e->hook->start + 1, e->hook->end - e->hook->start - 2)) e->hook_index = i;
    }
    if (e->hook_index < 0) return 0;
    if ((e->agent_id && e->agent_id->type != T_STRING && e->agent_id->type != T_NULL) ||
        (e->agent && e->agent->type != T_STRING && e->agent->type != T_NULL))
        return 0;
    if (type && type->type == T_STRING && type->end - type->start - 2 >= rule->type_prefix.len &&
        memcmp(p + type->start + 1, rule->type_prefix.data, (size_t)rule->type_prefix.len) == 0)
        return 0;
    Member room[MAX_NESTED_KEYS];
    if (nested && nested->type == T_OBJECT) {
        Scan s = {p, nested->start, nested->end, 0, &validate_only};
        int count = object_members(&s, room, MAX_NESTED_KEYS, 1);
        if (count < 0) return 0; /* a duplicate or escaped name: the steps decide */
        for (int i = 0; i < count; i++) {
            const char *k = p + room[i].key.start;
            Py_ssize_t kl = room[i].key.len;
            Member inner[MAX_NESTED_KEYS];
            int inner_count = -2; /* its members, read once when a name "k.x" asks (-1: unreadable) */
            for (int j = 0; j < rule->nnested; j++) {
                const Name *name = &rule->nested_names[j];
                if (name_is(name, k, kl)) return 0;
                /* "data.usage": a member of the object under this one */
                if (room[i].type != T_OBJECT || name->len <= kl + 1 || name->data[kl] != '.' ||
                    memcmp(name->data, k, (size_t)kl) != 0)
                    continue;
                if (inner_count == -2) {
                    Scan s2 = {p, room[i].start, room[i].end, 0, &validate_only};
                    inner_count = object_members(&s2, inner, MAX_NESTED_KEYS, 1);
                }
                if (inner_count < 0 || member_named(p, inner, inner_count, name->data + kl + 1, name->len - kl - 1))
                    return 0;
            }
        }
    }
    if (result && result->type == T_OBJECT) { /* its error, if any, says nothing (semantics.error_text) */
        Scan s = {p, result->start, result->end, 0, &validate_only};
        int count = object_members(&s, room, MAX_NESTED_KEYS, 1);
        if (count < 0) return 0;
        for (int i = 0; i < count; i++) {
            if (name_is(&rule->result_error, p + room[i].key.start, room[i].key.len) && !empty_value(p, &room[i]))
                return 0;
        }
    }
    return 1;
}

static int same_session(PyObject *shape, const char *p, const Str *st) {
    if (!shape || st->escaped) return 0;
    Py_ssize_t n;
    const char *have = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(shape, 1), &n);
    if (!have) {
        PyErr_Clear();
        return 0;
    }
    return n == st->len && memcmp(have, p + st->start, (size_t)n) == 0;
}

/* A quiet entry written: counted by agent and level (CountByLevel, as AgentMetrics counts its
 * record), its shape for the trace branch, and, for a run hook, what pairs it. */
static int entry_add(FastPath *fp, Output *o, Tally *tally, const char *p, const EntryFields *e, long rank,
                     const char *time) {
    if (fp->count) {
        Seen m;
        memset(&m, 0, sizeof(m));
        m.label = text_of(fp, p, e->agent);
        if (!m.label) return -1;
        int r = tally_count(fp, tally, &m, rank);
        seen_clear(&m);
        if (r < 0) return -1;
    }
    Scan ss = {p, e->session->start, e->session->end, 0, fp};
    Str st;
    scan_string(&ss, &st);
    if (!same_session(o->last_shape, p, &st)) {
        PyObject *session = string_object(p, &st);
        PyObject *shape = session ? PyTuple_Pack(2, fp->entries.shape, session) : NULL;
        Py_XDECREF(session);
        if (!shape) return -1;
        Py_XSETREF(o->last_shape, shape);
    }
    if (PyList_Append(o->selected, o->last_shape) < 0) return -1;
    if (!((fp->entries.run_hooks >> e->hook_index) & 1)) return 0;
    PyObject *agent_id = text_of(fp, p, e->agent_id), *agent = text_of(fp, p, e->agent);
    PyObject *when = PyUnicode_FromStringAndSize(time, 27);
    PyObject *run = agent_id && agent && when
        ? PyTuple_Pack(5, PyTuple_GET_ITEM(fp->entries.hook_objects, e->hook_index), PyTuple_GET_ITEM(o->last_shape, 1),
                       agent_id, agent, when)
        : NULL;
    Py_XDECREF(agent_id);
    Py_XDECREF(agent);
    Py_XDECREF(when);
    int r = run ? PyList_Append(o->runs, run) : -1;
    Py_XDECREF(run);
    return r;
}

#define RUN_ANY (-1) /* a run's first line: the run is of its kind */
#define RUN_PLAIN 0
#define RUN_READ 1
#define RUN_ENTRIES 2
#define ENTRIES_TO_CUT 8 /* quiet entries in a row that end a run of lines a step reads: they are their own run */

/* `run` (in, out): the kind of run: RUN_PLAIN lines no step reads, RUN_READ lines a step reads
 * in Python (K_READ), which are written whatever their level (the level step runs on their
 * records) and not tallied (their steps count them), RUN_ENTRIES quiet entries (EntryRule;
 * counted here, all written: one under the level floor is LINE_BELOW and where it starts is in
 * o->handed, for its session only); RUN_ANY: this line's kind, set here. A
 * line of another kind is LINE_OTHER; `kind` (out): the line's own (a quiet entry in a run of
 * lines a step reads is written as one of them). */
static int one_line(FastPath *fp, const char *p, Py_ssize_t n, const char *suffix, Py_ssize_t suffix_len,
                    Output *o, Tally *tally, int *run, int *kind) {
    if (n < 2 || p[0] != '{' || p[n - 1] != '}') return LINE_SLOW;
    const char *escape = memchr(p, '\\', (size_t)n);
    if (escape) { /* \uXXXX or \/: the line as orjson would write its strings */
        Py_ssize_t m = canonical_copy(o, p, n, escape - p);
        if (m == -2) return LINE_ERROR;
        if (m < 0) return LINE_SLOW;
        if (m > 0) {
            p = o->scratch;
            n = m;
        }
    }
    if (n > 8 && memcmp(p, "{\"text\"", 7) == 0) { /* loguru's serialize=True, as json.dumps writes it */
        Py_ssize_t m = loguru_flat(o, p, n);
        if (m == -2) return LINE_ERROR;
        if (m < 0) return LINE_SLOW;
        p = o->flat;
        n = m;
    }
    Field fields[MAX_TOP];
    int nf = 0, reads = 0;
    int at[NROLES];
    for (int r = 0; r < NROLES; r++) at[r] = -1;
    Scan s = {p, 1, n, 0, fp};
    skip_ws(&s);
    if (s.pos < n && p[s.pos] == '}') return LINE_SLOW; /* {}: no time */
    for (;;) {
        if (s.pos >= n || p[s.pos] != '"' || nf >= MAX_TOP) return LINE_SLOW;
        Field *f = &fields[nf];
        if (scan_string(&s, &f->key) < 0 || f->key.escaped) return LINE_SLOW;
        const char *k = p + f->key.start;
        Py_ssize_t kl = f->key.len;
        for (int j = 0; j < nf; j++) {
            if (fields[j].key.len == kl && memcmp(p + fields[j].key.start, k, (size_t)kl) == 0) return LINE_SLOW;
        }
        int cls = key_class(fp, k, kl);
        if (cls < 0) return LINE_ERROR;
        if ((cls & K_BAIL) || (fp->redact && (cls & K_SECRET))) return LINE_SLOW;
        if (cls & K_READ) reads = 1;
        f->cls = cls;
        f->loose = 0;
        int role = role_of(k, kl);
        if (role >= 0) at[role] = nf;
        skip_ws(&s);
        if (s.pos >= n || p[s.pos] != ':') return LINE_SLOW;
        s.pos++;
        skip_ws(&s);
        f->start = s.pos;
        f->ws = 0;
        char c = s.pos < n ? p[s.pos] : 0;
        int number = c == '-' || (c >= '0' && c <= '9');
        if (role == R_TIME || role == R_LEVEL || role == R_MESSAGE) {
            /* replaced by their canonical form: the time and level are not redacted as sent */
            Str st;
            if (c == '"') {
                if (scan_string(&s, &st) < 0) return LINE_SLOW;
                f->type = T_STRING;
            } else if (number && role == R_TIME) {
                f->type = scan_any_number(&s);
            } else if (number && role == R_LEVEL) {
                f->type = scan_number(&s);
                if (f->type != T_INT) return LINE_SLOW;
            } else {
                return LINE_SLOW; /* not text: Python decides */
            }
            if (f->type < 0) return LINE_SLOW;
            if (role == R_MESSAGE) {
                int ok = string_clean(fp, p, &st, 1);
                if (ok < 0) return LINE_ERROR;
                if (!ok) return LINE_SLOW;
            }
        } else {
            s.ws = 0;
            int t;
            if (number && role >= R_TIME_ALIAS && role < R_LEVEL_ALIAS) {
                t = scan_any_number(&s); /* zap's "ts":1764410000.1234567: checked as a field if it stays one */
                f->loose = 1;
            } else {
                t = scan_value(&s, 1, (cls & K_TEXT) != 0);
                if (t == FAIL_PY) return LINE_ERROR;
            }
            if (t < 0) return LINE_SLOW;
            f->type = t;
            f->ws = s.ws;
        }
        f->end = s.pos;
        nf++;
        skip_ws(&s);
        if (s.pos >= n) return LINE_SLOW;
        char d = p[s.pos++];
        if (d == '}') break;
        if (d != ',') return LINE_SLOW;
        skip_ws(&s);
    }
    if (s.pos != n) return LINE_SLOW;
    *kind = reads;
    if (*run == RUN_PLAIN && reads) return LINE_OTHER;
    EntryFields entry;
    if (reads && fp->entries.on && entry_fields(fp, p, fields, nf, &entry)) *kind = RUN_ENTRIES;
    if (*run == RUN_ANY) *run = *kind;
    int read = *run;
    if ((read == RUN_PLAIN) != !reads || (read == RUN_ENTRIES && *kind != RUN_ENTRIES)) return LINE_OTHER;
    int t_i = at[R_TIME] >= 0 ? at[R_TIME] : first_present(at, R_TIME_ALIAS, 5);
    int l_i = at[R_LEVEL] >= 0 ? at[R_LEVEL] : first_present(at, R_LEVEL_ALIAS, 3);
    int m_i = at[R_MESSAGE] >= 0 ? at[R_MESSAGE] : at[R_MSG];
    if (t_i < 0) return LINE_SLOW; /* the time it arrived: Python */
    if (l_i >= 0 && fields[l_i].type != T_STRING && fields[l_i].type != T_INT) return LINE_SLOW;
    if (m_i < 0 && at[R_EVENT] >= 0 && fields[at[R_EVENT]].type == T_STRING) m_i = at[R_EVENT];
    if (m_i >= 0 && m_i != at[R_MESSAGE]) { /* msg or event: the message the redactor reads */
        if (fields[m_i].type != T_STRING) return LINE_SLOW; /* written as JSON text: Python */
        Scan ms = {p, fields[m_i].start, n, 0, fp};
        Str st;
        scan_string(&ms, &st);
        int ok = string_clean(fp, p, &st, 1);
        if (ok < 0) return LINE_ERROR;
        if (!ok) return LINE_SLOW;
    }
    for (int j = 0; j < nf; j++) { /* a time alias that stays a field: written as sent, if orjson would */
        if (!fields[j].loose || j == t_i) continue;
        Scan rs = {p, fields[j].start, n, 0, fp};
        if (scan_number(&rs) < 0 || rs.pos != fields[j].end) return LINE_SLOW;
    }

    char time[27];
    if (field_time(p, &fields[t_i], time, fp->naive_utc) < 0) return LINE_SLOW;
    PyObject *level = field_level(fp, p, l_i < 0 ? NULL : &fields[l_i]); /* borrowed */
    if (!level) return PyErr_Occurred() ? LINE_ERROR : LINE_SLOW;
    PyObject *action_obj = PyDict_GetItemWithError(fp->actions, level);
    if (!action_obj) return PyErr_Occurred() ? LINE_ERROR : LINE_SLOW;
    long code = PyLong_AsLong(action_obj); /* action * 16 + the level's rank */
    long action = code / 16;
    if (action == 2) return LINE_SLOW;
    /* written, and its record handed to a step (RecordsAtLevels); a quiet entry under the level
     * floor: written for its session, and where it starts handed back (the log file leaves it out) */
    int under = read == RUN_ENTRIES && action == 1;
    int handed = (action == 3 && !read) || under;
    if (read || handed) action = 0; /* read: the level step decides in Python, on the record */
    /* a quiet entry: usage skips it (no last error, nothing to sum), AgentMetrics counts it */
    if (read == RUN_ENTRIES && entry_add(fp, o, tally, p, &entry, code % 16, time) < 0) return LINE_ERROR;

    if (!read) { /* what the metric steps count, read whole before anything is counted */
        Seen seen;
        int r = read_metrics(fp, p, fields, nf, &seen);
        if (r == FAIL_PY) return LINE_ERROR;
        if (r < 0) return LINE_SLOW;
        r = tally_add(fp, tally, &seen, code % 16);
        seen_clear(&seen);
        if (r < 0) return LINE_ERROR;
        if (action == 1) return LINE_BELOW;
    }

    Py_ssize_t level_len;
    const char *level_text = PyUnicode_AsUTF8AndSize(level, &level_len);
    if (!level_text) return LINE_ERROR;
    if (reserve(o, n + 64 + level_len + suffix_len) < 0) return LINE_ERROR;
    char *out = PyBytes_AS_STRING(o->out) + o->used, *w = out;
    memcpy(w, "{\"time\":\"", 9); w += 9;
    memcpy(w, time, 27); w += 27;
    memcpy(w, "\",\"level\":\"", 11); w += 11;
    memcpy(w, level_text, (size_t)level_len); w += level_len;
    memcpy(w, "\",\"message\":", 12); w += 12;
    if (m_i < 0) {
        memcpy(w, "\"\"", 2); w += 2;
    } else {
        Field *mf = &fields[m_i];
        memcpy(w, p + mf->start, (size_t)(mf->end - mf->start)); w += mf->end - mf->start;
    }
    for (int j = 0; j < nf; j++) {
        if (j == t_i || j == l_i || j == m_i) continue;
        Field *f = &fields[j];
        *w++ = ',';
        memcpy(w, p + f->key.start - 1, (size_t)(f->key.len + 2)); w += f->key.len + 2;
        *w++ = ':';
        w = copy_compact(w, p, f->start, f->end, f->ws);
    }
    memcpy(w, suffix, (size_t)suffix_len); w += suffix_len;
    *w++ = '}';
    *w++ = '\n';
    /* what sampling and rate limits decide by, for a line the log file gets */
    if (fp->thin.data && (!read || (read == RUN_ENTRIES && !under)) && thin_entry(fp, o, p, fields, nf, m_i, level) < 0)
        return LINE_ERROR;
    if (handed) {
        PyObject *at = PyLong_FromSsize_t(o->used);
        if (!at || PyList_Append(o->handed, at) < 0) {
            Py_XDECREF(at);
            return LINE_ERROR;
        }
        Py_DECREF(at);
    }
    o->used += w - out;
    if (under) return LINE_BELOW; /* the bounds are the written lines' (the log file's) */
    if (!o->have_bounds) {
        memcpy(o->low, time, 27);
        memcpy(o->high, time, 27);
        o->have_bounds = 1;
    } else if (memcmp(time, o->low, 27) < 0) {
        memcpy(o->low, time, 27);
    } else if (memcmp(time, o->high, 27) > 0) {
        memcpy(o->high, time, 27);
    }
    return LINE_KEPT;
}

/* ---- Python API ---- */

static PyObject *FastPath_run(FastPath *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "run(lines, start, stop, suffix)");
        return NULL;
    }
    if (!self->aliases || !self->keys.slots) {
        PyErr_SetString(PyExc_RuntimeError, "FastPath.run before FastPath.__init__ succeeded");
        return NULL;
    }
    PyObject *lines = args[0], *suffixes = PyList_Check(args[3]) ? args[3] : NULL;
    if (!PyList_Check(lines) || !(suffixes || PyBytes_Check(args[3]))) {
        PyErr_SetString(PyExc_TypeError,
                        "run(lines: list[bytes], start: int, stop: int, suffix: bytes | list[bytes] (one per line))");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]), stop = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (start < 0 || stop < 0) {
        PyErr_SetString(PyExc_ValueError, "run: start and stop must be >= 0");
        return NULL;
    }
    Output o = {NULL, 0, {0}, {0}, 0, PyList_New(0), PyList_New(0), NULL, 0, NULL, 0, PyList_New(0), PyList_New(0),
                NULL};
    o.out = PyBytes_FromStringAndSize(NULL, 1 << 16);
    Tally tally = {PyDict_New(), PyList_New(0), PyDict_New(), PyList_New(0)};
    if (!o.out || !o.handed || !o.thin || !o.selected || !o.runs || !tally.agent_index || !tally.agents ||
        !tally.group_index || !tally.groups)
        goto error;
    Py_ssize_t i = start, kept = 0, below = 0;
    int read = RUN_ANY, slow = 0;
    /* quiet entries in a row within a run of lines a step reads: from which line, and where it started */
    Py_ssize_t quiet = 0, quiet_from = 0, quiet_used = 0, quiet_kept = 0;
    /* the questions to Python may run any code, the list's own length included: re-read each time */
    for (; i < stop && i < PyList_GET_SIZE(lines); i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        /* the line's own end (an ack batch's _rid), or the connection's */
        PyObject *end = !suffixes ? args[3] : i < PyList_GET_SIZE(suffixes) ? PyList_GET_ITEM(suffixes, i) : NULL;
        if (!PyBytes_Check(line) || !end || !PyBytes_Check(end)) {
            slow = 1;
            break;
        }
        Py_INCREF(line);
        Py_INCREF(end);
        const char *suffix = PyBytes_AS_STRING(end);
        Py_ssize_t suffix_len = PyBytes_GET_SIZE(end);
        Py_ssize_t used = o.used;
        int kind;
        int r = one_line(self, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line), suffix, suffix_len, &o, &tally, &read,
                         &kind);
        Py_DECREF(end);
        Py_DECREF(line);
        if (r == LINE_ERROR) goto error;
        if (r == LINE_OTHER) break;
        if (r == LINE_SLOW) {
            slow = 1;
            break;
        }
        if (read == RUN_READ && kind == RUN_ENTRIES) {
            if (quiet++ == 0) {
                quiet_from = i;
                quiet_used = used;
                quiet_kept = kept;
            }
            if (quiet >= ENTRIES_TO_CUT) { /* taken back: the next run starts with them */
                i = quiet_from;
                o.used = quiet_used;
                kept = quiet_kept;
                break;
            }
        } else {
            quiet = 0;
        }
        if (r == LINE_KEPT) kept++;
        else below++;
    }
    PyMem_Free(o.scratch);
    o.scratch = NULL;
    PyMem_Free(o.flat);
    o.flat = NULL;
    if (_PyBytes_Resize(&o.out, o.used) < 0) goto error;
    PyObject *low = o.have_bounds ? PyUnicode_FromStringAndSize(o.low, 27) : Py_NewRef(Py_None);
    PyObject *high = o.have_bounds ? PyUnicode_FromStringAndSize(o.high, 27) : Py_NewRef(Py_None);
    if (!low || !high) {
        Py_XDECREF(low);
        Py_XDECREF(high);
        goto error;
    }
    Py_DECREF(tally.agent_index);
    Py_DECREF(tally.group_index);
    Py_CLEAR(o.last_shape);
    return Py_BuildValue("(NnnnNNNNNNNNNN)", o.out, i, kept, below, tally.agents, tally.groups, low, high,
                         PyLong_FromLong(read == RUN_ANY ? RUN_PLAIN : read), PyBool_FromLong(slow), o.handed, o.thin,
                         o.selected, o.runs);
error:
    PyMem_Free(o.scratch);
    PyMem_Free(o.flat);
    Py_XDECREF(o.out);
    Py_XDECREF(o.handed);
    Py_XDECREF(o.thin);
    Py_XDECREF(o.selected);
    Py_XDECREF(o.runs);
    Py_XDECREF(o.last_shape);
    Py_XDECREF(tally.agent_index);
    Py_XDECREF(tally.agents);
    Py_XDECREF(tally.group_index);
    Py_XDECREF(tally.groups);
    return NULL;
}

/* A tuple of bucket bounds as doubles (a new array; None: none), 0 or -1. */
static int bounds_of(PyObject *buckets, double **out, Py_ssize_t *n) {
    *n = buckets ? PyTuple_GET_SIZE(buckets) : 0;
    *out = PyMem_Malloc((size_t)(*n ? *n : 1) * sizeof(double));
    if (!*out) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < *n; i++) {
        (*out)[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(buckets, i));
        if ((*out)[i] == -1.0 && PyErr_Occurred()) {
            PyMem_Free(*out);
            *out = NULL;
            return -1;
        }
    }
    return 0;
}

static void entry_rule_clear(EntryRule *r) {
    Name *names[] = {&r->hook, &r->session, &r->agent_id, &r->agent, &r->nested, &r->type, &r->type_prefix,
                     &r->result, &r->result_error};
    for (int i = 0; i < 9; i++) name_set(names[i], Py_None);
    for (int i = 0; i < r->nhooks; i++) name_set(&r->hooks[i], Py_None);
    for (int i = 0; i < r->nnested; i++) name_set(&r->nested_names[i], Py_None);
    r->nhooks = r->nnested = r->run_hooks = r->on = 0;
    Py_CLEAR(r->shape);
    Py_CLEAR(r->hook_objects);
}

/* Each str of `texts` into `out` (room for enough), counted in `count` as it is set. */
static int names_set(Name *out, int *count, PyObject *texts) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(texts); i++) {
        PyObject *text = PyTuple_GET_ITEM(texts, i);
        if (!PyUnicode_Check(text)) {
            PyErr_SetString(PyExc_TypeError, "entries: hooks and nested names are str");
            return -1;
        }
        (*count)++;
        if (name_set(&out[i], text) < 0) return -1;
    }
    return 0;
}

/* entries: None, or (shape, hook key, hooks, run hooks, session key, agent_id key, agent key,
 * nested key, nested names, type key, type prefix, result key, result's error key): see
 * EntryRule and logd/spec.py's QuietEntries. */
static int entry_rule_set(EntryRule *r, PyObject *spec) {
    entry_rule_clear(r);
    if (spec == Py_None) return 0;
    PyObject *shape, *hooks, *runs, *nested_names;
    PyObject *keys[9]; /* hook, session, agent_id, agent, nested, type, type prefix, result, result's error */
    if (!PyArg_ParseTuple(spec, "OUO!O!UUUUO!UUUU;entries: (shape, hook, hooks, run_hooks, session, agent_id, agent, "
                          "nested, nested_names, type, type_prefix, result, result_error)", &shape, &keys[0],
                          &PyTuple_Type, &hooks, &PyTuple_Type, &runs, &keys[1], &keys[2], &keys[3], &keys[4],
                          &PyTuple_Type, &nested_names, &keys[5], &keys[6], &keys[7], &keys[8]))
        return -1;
    if (PyTuple_GET_SIZE(hooks) > MAX_HOOKS || PyTuple_GET_SIZE(nested_names) > MAX_NESTED_NAMES) {
        PyErr_SetString(PyExc_ValueError, "entries: too many hooks or nested names");
        return -1;
    }
    Name *names[] = {&r->hook, &r->session, &r->agent_id, &r->agent, &r->nested, &r->type, &r->type_prefix,
                     &r->result, &r->result_error};
    for (int i = 0; i < 9; i++) {
        if (name_set(names[i], keys[i]) < 0) goto error;
    }
    if (names_set(r->hooks, &r->nhooks, hooks) < 0 || names_set(r->nested_names, &r->nnested, nested_names) < 0)
        goto error;
    for (int i = 0; i < r->nhooks; i++) {
        int run = PySequence_Contains(runs, PyTuple_GET_ITEM(hooks, i));
        if (run < 0) goto error;
        if (run) r->run_hooks |= 1 << i;
    }
    r->shape = Py_NewRef(shape);
    r->hook_objects = Py_NewRef(hooks);
    r->on = 1;
    return 0;
error:
    entry_rule_clear(r);
    return -1;
}

static int FastPath_init(FastPath *self, PyObject *args, PyObject *kwds) {
    static char *names[] = {"aliases", "actions", "classify_key", "value_clean", "message_clean", "min_len", "redact",
                            "label", "count", "histogram", "scale", "buckets", "sum", "sum_label", "directions",
                            "names", "failed", "failed_ranks", "observe", "observe_label", "observe_scale",
                            "observe_buckets", "thin", "naive_utc", "entries", NULL};
    PyObject *aliases, *actions, *classify_key, *value_clean, *message_clean;
    PyObject *label = Py_None, *histogram = Py_None, *sum = Py_None, *sum_label = Py_None;
    PyObject *counted = Py_None, *failed = Py_None, *observe = Py_None, *observe_label = Py_None, *thin = Py_None;
    PyObject *buckets = NULL, *directions = NULL, *observe_buckets = NULL, *entries = Py_None;
    Py_ssize_t min_len;
    int redact, count = 0, naive_utc = 0;
    long failed_ranks = 0;
    double scale = 1.0, observe_scale = 1.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!OOOnp|$OpOdO!OOO!OOlOOdO!OpO", names, &PyDict_Type, &aliases,
                                     &PyDict_Type, &actions, &classify_key, &value_clean, &message_clean, &min_len,
                                     &redact, &label, &count, &histogram, &scale, &PyTuple_Type, &buckets, &sum,
                                     &sum_label, &PyDict_Type, &directions, &counted, &failed, &failed_ranks,
                                     &observe, &observe_label, &observe_scale, &PyTuple_Type, &observe_buckets, &thin,
                                     &naive_utc, &entries))
        return -1;
    if (entry_rule_set(&self->entries, entries) < 0) return -1;
    if (!PyCallable_Check(classify_key)) {
        PyErr_SetString(PyExc_TypeError, "classify_key must be callable");
        return -1;
    }
    PyObject *names_given[] = {label, histogram, sum, sum_label, counted, failed, observe, observe_label, thin};
    for (int i = 0; i < 9; i++) {
        if (names_given[i] != Py_None && !PyUnicode_Check(names_given[i])) {
            PyErr_SetString(PyExc_TypeError, "label, histogram, sum, sum_label, names, failed, observe, "
                                             "observe_label and thin are key names (str) or None");
            return -1;
        }
    }
    if ((count || histogram != Py_None || sum != Py_None || counted != Py_None) && label == Py_None) {
        PyErr_SetString(PyExc_ValueError, "counts and sums need their label key");
        return -1;
    }
    if (observe != Py_None && observe_label == Py_None) {
        PyErr_SetString(PyExc_ValueError, "observe needs its observe_label key");
        return -1;
    }
    if (!(scale > 0) || !(observe_scale > 0)) {
        PyErr_SetString(PyExc_ValueError, "scale and observe_scale must be > 0");
        return -1;
    }
    double *bounds = NULL, *observe_bounds = NULL;
    Py_ssize_t nb, n_observe;
    if (bounds_of(buckets, &bounds, &nb) < 0 || bounds_of(observe_buckets, &observe_bounds, &n_observe) < 0 ||
        name_set(&self->label, label) < 0 || name_set(&self->histogram, histogram) < 0 ||
        name_set(&self->sum, sum) < 0 || name_set(&self->sum_label, sum_label) < 0 ||
        name_set(&self->names, counted) < 0 || name_set(&self->failed, failed) < 0 ||
        name_set(&self->observe, observe) < 0 || name_set(&self->observe_label, observe_label) < 0 ||
        name_set(&self->thin, thin) < 0) {
        PyMem_Free(bounds);
        PyMem_Free(observe_bounds);
        return -1;
    }
    PyMem_Free(self->buckets);
    self->buckets = bounds;
    self->nbuckets = nb;
    PyMem_Free(self->observe_buckets);
    self->observe_buckets = observe_bounds;
    self->n_observe_buckets = n_observe;
    self->failed_ranks = failed_ranks;
    self->observe_scale = observe_scale;
    self->count = count;
    self->scale = scale;
    PyObject *no_directions = directions ? NULL : PyDict_New();
    if (!directions && !no_directions) return -1;
    Py_XSETREF(self->directions, directions ? Py_NewRef(directions) : no_directions);
    Py_XSETREF(self->aliases, Py_NewRef(aliases));
    Py_XSETREF(self->actions, Py_NewRef(actions));
    Py_XSETREF(self->classify_key, Py_NewRef(classify_key));
    Py_XSETREF(self->value_clean, Py_NewRef(value_clean));
    Py_XSETREF(self->message_clean, Py_NewRef(message_clean));
    self->min_len = min_len;
    self->redact = redact;
    self->naive_utc = naive_utc;
    if (!self->keys.slots && (cache_init(&self->keys) < 0 || cache_init(&self->values) < 0 ||
                              cache_init(&self->messages) < 0)) {
        PyErr_NoMemory();
        return -1;
    }
    cache_clear(&self->keys);
    cache_clear(&self->values);
    cache_clear(&self->messages);
    return 0;
}

static int FastPath_traverse(FastPath *self, visitproc visit, void *arg) {
    Py_VISIT(self->aliases);
    Py_VISIT(self->actions);
    Py_VISIT(self->classify_key);
    Py_VISIT(self->value_clean);
    Py_VISIT(self->message_clean);
    Py_VISIT(self->directions);
    Py_VISIT(self->entries.shape);
    Py_VISIT(self->entries.hook_objects);
    return 0;
}

static int FastPath_clear(FastPath *self) {
    Py_CLEAR(self->aliases);
    Py_CLEAR(self->actions);
    Py_CLEAR(self->classify_key);
    Py_CLEAR(self->value_clean);
    Py_CLEAR(self->message_clean);
    Py_CLEAR(self->directions);
    Py_CLEAR(self->entries.shape);
    Py_CLEAR(self->entries.hook_objects);
    return 0;
}

static void FastPath_dealloc(FastPath *self) {
    PyObject_GC_UnTrack(self);
    FastPath_clear(self);
    cache_free(&self->keys);
    cache_free(&self->values);
    cache_free(&self->messages);
    PyMem_Free(self->buckets);
    PyMem_Free(self->label.data);
    PyMem_Free(self->histogram.data);
    PyMem_Free(self->sum.data);
    PyMem_Free(self->sum_label.data);
    PyMem_Free(self->names.data);
    PyMem_Free(self->failed.data);
    PyMem_Free(self->observe.data);
    PyMem_Free(self->observe_label.data);
    PyMem_Free(self->thin.data);
    PyMem_Free(self->observe_buckets);
    entry_rule_clear(&self->entries);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef FastPath_methods[] = {
    {"run", (PyCFunction)(void (*)(void))FastPath_run, METH_FASTCALL,
     "run(lines, start, stop, suffix) -> (json_lines, next, kept, below, agents, usage_rows, low, high, read, slow,\n"
     "handed, thin, selected, runs)\n\n"
     "Lines from start on of the first line's kind (read: 0 lines no step reads, 1 lines a step reads in Python,\n"
     "2 quiet entries), until the first of another kind or the first that Python must take (slow; its index is\n"
     "next). suffix: the end of every line, or a list of one per line. handed: where the lines whose records a\n"
     "step is handed start in json_lines (a run of quiet entries: those under the level floor, written for their\n"
     "sessions only); thin: per line written (when a thin key is set), (where it starts, that key's text, level,\n"
     "message); selected: per quiet entry, (shape, session); runs: per quiet run hook, (hook, session,\n"
     "agent_id, agent, time)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FastPathType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "logd._hotpath.FastPath",
    .tp_basicsize = sizeof(FastPath),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Lines in logd's shape to JSON lines and metric counts (see logd/hotpath.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FastPath_init,
    .tp_dealloc = (destructor)FastPath_dealloc,
    .tp_traverse = (traverseproc)FastPath_traverse,
    .tp_clear = (inquiry)FastPath_clear,
    .tp_methods = FastPath_methods,
};

/* The home slot a string gets in the caches: for tests (seeded per process, spread over all
 * slots) and diagnosis. */
static PyObject *home_slot(PyObject *module, PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "home_slot(bytes)");
        return NULL;
    }
    uint64_t h = hash_bytes(PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg));
    return PyLong_FromSsize_t((Py_ssize_t)(h & (CACHE_SLOTS - 1)));
}

static PyMethodDef module_methods[] = {
    {"home_slot", home_slot, METH_O, "home_slot(data: bytes) -> int: the cache slot data is looked up from first."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_hotpath", NULL, -1, module_methods, NULL, NULL, NULL,
                                    NULL};

static int seed_hash(void) {
    PyObject *os = PyImport_ImportModule("os");
    if (!os) return -1;
    PyObject *bytes = PyObject_CallMethod(os, "urandom", "n", (Py_ssize_t)sizeof(hash_seed));
    Py_DECREF(os);
    if (!bytes) return -1;
    if (!PyBytes_Check(bytes) || PyBytes_GET_SIZE(bytes) != (Py_ssize_t)sizeof(hash_seed)) {
        Py_DECREF(bytes);
        PyErr_SetString(PyExc_RuntimeError, "os.urandom gave no seed");
        return -1;
    }
    memcpy(&hash_seed, PyBytes_AS_STRING(bytes), sizeof(hash_seed));
    Py_DECREF(bytes);
    return 0;
}

PyMODINIT_FUNC PyInit__hotpath(void) {
    if (seed_hash() < 0) return NULL;
    if (PyType_Ready(&FastPathType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "FastPath", (PyObject *)&FastPathType) < 0 ||
        PyModule_AddIntConstant(m, "K_SECRET", K_SECRET) < 0 || PyModule_AddIntConstant(m, "K_BAIL", K_BAIL) < 0 ||
        PyModule_AddIntConstant(m, "K_TEXT", K_TEXT) < 0 || PyModule_AddIntConstant(m, "K_READ", K_READ) < 0 ||
        PyModule_AddIntConstant(m, "K_FULL", K_FULL) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
