/* BinXML substitution values decoded in C: the optional fast path of vigil.events._binxml.
 *
 * SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * A record's values are an array of (size, type) descriptors followed by the values.  Python
 * decodes them in ``Chunk._values``; this module gives the same list for the commonest types,
 * formatted exactly as the Python decoders format them (the strings gene v2.3.0 prints), and
 * hands every other value back to Python: ``chunk.instance(start, end)`` for a nested BinXML
 * value, ``chunk._value(type, start, size)`` for the rest.  Anything it does not trust (too many
 * values, descriptors or values past the chunk) returns None, and the Python path then reports it
 * as it always has.  The tests compare both paths on the corpus and on random inputs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_VALUES 4096

static inline uint16_t u16_at(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static inline uint32_t u32_at(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t u64_at(const unsigned char *p)
{
    return (uint64_t)u32_at(p) | ((uint64_t)u32_at(p + 4) << 32);
}

/* A str of ``length`` ASCII characters (only ever given ASCII: formatted numbers and dates). */
static PyObject *ascii_text(const char *text, int length)
{
    PyObject *str = PyUnicode_New(length, 127);
    if (str != NULL)
        memcpy(PyUnicode_1BYTE_DATA(str), text, (size_t)length);
    return str;
}

/* UTF-16LE code units that are all below U+0100 as a one-byte str, what the UTF-16 codec gives
 * for them (the commonest text by far); NULL without an exception when one is not. */
static PyObject *latin1_units(const unsigned char *p, Py_ssize_t units)
{
    unsigned char high = 0, low = 0;
    for (Py_ssize_t i = 0; i < units; i++) {
        high |= p[2 * i + 1];
        low |= p[2 * i];
    }
    if (high)
        return NULL;
    PyObject *str = PyUnicode_New(units, low & 0x80 ? 255 : 127); /* the exact kind: canonical */
    if (str == NULL)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(str);
    for (Py_ssize_t i = 0; i < units; i++)
        out[i] = p[2 * i];
    return str;
}

/* UTF-16LE with errors replaced and trailing NULs dropped, as
 * ``codecs.utf_16_le_decode(raw, "replace", True)[0].rstrip("\x00")``. */
static PyObject *utf16_text(const unsigned char *p, Py_ssize_t size)
{
    int byteorder = -1; /* little endian, a BOM is kept as a character */
    if ((size & 1) == 0) {
        /* Trailing zero code units decode to U+0000 whatever precedes them: drop them first. */
        while (size >= 2 && p[size - 1] == 0 && p[size - 2] == 0)
            size -= 2;
        PyObject *text = latin1_units(p, size / 2);
        if (text != NULL || PyErr_Occurred())
            return text;
        return PyUnicode_DecodeUTF16((const char *)p, size, "replace", &byteorder);
    }
    PyObject *text = PyUnicode_DecodeUTF16((const char *)p, size, "replace", &byteorder);
    if (text == NULL)
        return NULL;
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    Py_ssize_t kept = length;
    int kind = PyUnicode_KIND(text);
    const void *chars = PyUnicode_DATA(text);
    while (kept > 0 && PyUnicode_READ(kind, chars, kept - 1) == 0)
        kept--;
    if (kept == length)
        return text;
    PyObject *stripped = PyUnicode_Substring(text, 0, kept);
    Py_DECREF(text);
    return stripped;
}

static const char HEX_UPPER[] = "0123456789ABCDEF";

/* GUID as 8-4-4-4-12 upper-case hex digits: the first three fields little-endian, the rest as stored. */
static PyObject *guid_text(const unsigned char *p)
{
    static const signed char order[36] = {3,  3,  2,  2,  1,  1,  0,  0,  -1, 5,  5,  4,
                                          4,  -1, 7,  7,  6,  6,  -1, 8,  8,  9,  9,  -1,
                                          10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15};
    char text[36];
    for (int i = 0; i < 36; i++) {
        int byte = order[i];
        if (byte < 0)
            text[i] = '-';
        else /* the high nibble first: the first of each pair of positions */
            text[i] = HEX_UPPER[(i > 0 && order[i - 1] == byte) ? p[byte] & 0x0F : p[byte] >> 4];
    }
    return ascii_text(text, 36);
}

/* "S-revision-authority-sub-sub...", or NULL without an exception when the sub-authorities do
 * not fit (Python then raises its own error for the value). */
static PyObject *sid_text(const unsigned char *p, Py_ssize_t size, int *declined)
{
    unsigned count = p[1];
    if (8 + 4 * (Py_ssize_t)count > size) {
        *declined = 1;
        return NULL;
    }
    uint64_t authority = 0;
    for (int i = 2; i < 8; i++)
        authority = (authority << 8) | p[i];
    char text[16 + 21 + 255 * 11];
    int n = snprintf(text, 64, "S-%u-%llu", (unsigned)p[0], (unsigned long long)authority);
    for (unsigned i = 0; i < count; i++)
        n += snprintf(text + n, 12, "-%u", (unsigned)u32_at(p + 8 + 4 * i));
    return ascii_text(text, n);
}

/* Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil-from-days). */
static void civil_from_days(int64_t z, int64_t *year, unsigned *month, unsigned *day)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *day = doy - (153 * mp + 2) / 5 + 1;
    *month = mp < 10 ? mp + 3 : mp - 9;
    *year = y + (*month <= 2);
}

#define TICKS_PER_SECOND 10000000ULL
#define DAYS_1601_TO_1970 134774

/* FILETIME at 100 ns precision with trailing zeros (and a bare dot) trimmed, as gene prints it;
 * past year 9999 (where Python's datetime stops) the tick count itself. */
static PyObject *filetime_text(uint64_t ticks)
{
    uint64_t seconds_total = ticks / TICKS_PER_SECOND;
    unsigned fraction = (unsigned)(ticks % TICKS_PER_SECOND);
    int64_t days = (int64_t)(seconds_total / 86400);
    unsigned in_day = (unsigned)(seconds_total % 86400);
    int64_t year;
    unsigned month, day;
    civil_from_days(days - DAYS_1601_TO_1970, &year, &month, &day);
    char text[48];
    int n;
    if (year > 9999) {
        n = snprintf(text, sizeof text, "%llu", (unsigned long long)ticks);
        return ascii_text(text, n);
    }
    n = snprintf(text, sizeof text, "%04d-%02u-%02uT%02u:%02u:%02u", (int)year, month, day, in_day / 3600,
                 in_day / 60 % 60, in_day % 60);
    if (fraction) {
        n += snprintf(text + n, sizeof text - n, ".%07u", fraction);
        while (text[n - 1] == '0')
            n--;
    }
    text[n++] = 'Z';
    return ascii_text(text, n);
}

static PyObject *unsigned_text(unsigned long long value)
{
    char text[24];
    char *at = text + sizeof text;
    do {
        *--at = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    return ascii_text(at, (int)(text + sizeof text - at));
}

static PyObject *hex_text(unsigned long long value, int width)
{
    char text[24];
    int n = snprintf(text, sizeof text, "0x%0*llx", width, value);
    return ascii_text(text, n);
}

static PyObject *small_numbers[65536];

static PyObject *small_number(unsigned value)
{
    PyObject *text = small_numbers[value];
    if (text == NULL) {
        text = unsigned_text(value);
        if (text == NULL)
            return NULL;
        small_numbers[value] = text; /* kept for the life of the process: 65 536 strings at most */
    }
    Py_INCREF(text);
    return text;
}

/* decode_values(data, pos, chunk) -> (values, end) or None: see the module comment. */
static PyObject *decode_values(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "decode_values(data, pos, chunk)");
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "decode_values: data must be bytes");
        return NULL;
    }
    Py_ssize_t length = PyBytes_GET_SIZE(args[0]);
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    PyObject *chunk = args[2];
    if (pos < 0 || pos + 4 > length)
        Py_RETURN_NONE;
    uint32_t count = u32_at(data + pos);
    if (count > MAX_VALUES)
        Py_RETURN_NONE;
    const unsigned char *descriptors = data + pos + 4;
    Py_ssize_t start = pos + 4 + 4 * (Py_ssize_t)count;
    if (start > length)
        Py_RETURN_NONE;
    Py_ssize_t total = 0;
    for (uint32_t i = 0; i < count; i++)
        total += u16_at(descriptors + 4 * i);
    if (start + total > length)
        Py_RETURN_NONE;

    PyObject *values = PyList_New(count);
    if (values == NULL)
        return NULL;
    Py_ssize_t at = start;
    for (uint32_t i = 0; i < count; i++) {
        Py_ssize_t size = u16_at(descriptors + 4 * i);
        unsigned vtype = descriptors[4 * i + 2];
        const unsigned char *p = data + at;
        PyObject *value = NULL;
        int declined = 0;
        switch (vtype) {
        case 0x00:
            value = Py_NewRef(Py_None);
            break;
        case 0x01:
            value = utf16_text(p, size);
            break;
        case 0x04:
            declined = size != 1;
            if (!declined)
                value = small_number(p[0]);
            break;
        case 0x06:
            declined = size != 2;
            if (!declined)
                value = small_number(u16_at(p));
            break;
        case 0x08:
            declined = size != 4;
            if (!declined)
                value = unsigned_text(u32_at(p));
            break;
        case 0x0A:
            declined = size != 8;
            if (!declined)
                value = unsigned_text(u64_at(p));
            break;
        case 0x0F:
            declined = size != 16;
            if (!declined)
                value = guid_text(p);
            break;
        case 0x11:
            declined = size != 8;
            if (!declined)
                value = filetime_text(u64_at(p));
            break;
        case 0x13:
            declined = size < 8;
            if (!declined)
                value = sid_text(p, size, &declined);
            break;
        case 0x14:
            declined = size != 4;
            if (!declined)
                value = hex_text(u32_at(p), 4);
            break;
        case 0x15:
            declined = size != 8;
            if (!declined)
                value = hex_text(u64_at(p), 8);
            break;
        case 0x21:
            value = PyObject_CallMethod(chunk, "instance", "nn", at, at + size);
            break;
        default:
            declined = 1;
        }
        if (declined) {
            value = PyObject_CallMethod(chunk, "_value", "Inn", vtype, at, size);
        }
        if (value == NULL) {
            Py_DECREF(values);
            return NULL;
        }
        PyList_SET_ITEM(values, i, value);
        at += size;
    }
    PyObject *end = PyLong_FromSsize_t(at);
    if (end == NULL) {
        Py_DECREF(values);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, values, end);
    Py_DECREF(values);
    Py_DECREF(end);
    return result;
}

/* --- trees written out in a record ------------------------------------------------------------
 *
 * ``render_tree(data, pos, root, chunk, max_depth)`` is ``Chunk._render_tree`` with ``vigil.events.evtx._shape``:
 * gene's (key, value) for an element written out in full (no template), parsed and rendered at
 * once, and the position after it.  It returns None for whatever it does not handle (entity
 * references, processing instructions, a damaged structure): the Python walk then renders the
 * record, or reports it, as it always has.
 */

#define T_OPEN 0x01
#define T_CLOSE_START 0x02
#define T_CLOSE_EMPTY 0x03
#define T_END 0x04
#define T_ATTRIBUTE 0x06
#define NAMES_START 0x100 /* CHUNK_HEADER_SIZE // 2 */

typedef struct {
    const unsigned char *data;
    Py_ssize_t length;
    PyObject *chunk;
    PyObject *names; /* chunk.names: offset -> name */
    int declined;    /* set with a NULL return and no exception: leave the record to Python */
    long max_depth;  /* deeper trees are left to Python (_binxml._MAX_TREE_DEPTH) */
} Walk;

static PyObject *str_Name, *str_Value, *str_empty;

#define DECLINE(walk) \
    do {              \
        (walk)->declined = 1; \
        goto fail;    \
    } while (0)

static inline int byte_at(Walk *walk, Py_ssize_t pos)
{
    return pos >= 0 && pos < walk->length ? walk->data[pos] : -1;
}

static inline int u32_in(Walk *walk, Py_ssize_t pos, uint32_t *out)
{
    if (pos < 0 || pos + 4 > walk->length)
        return 0;
    *out = u32_at(walk->data + pos);
    return 1;
}

/* The name stored at chunk offset ``offset`` (cached in chunk.names), new reference. */
static PyObject *name_at_offset(Walk *walk, uint32_t offset)
{
    PyObject *key = PyLong_FromUnsignedLong(offset);
    if (key == NULL)
        return NULL;
    PyObject *name = PyDict_GetItemWithError(walk->names, key);
    if (name != NULL) {
        Py_DECREF(key);
        if (!PyUnicode_Check(name)) { /* the chunk's own cache holds str only: be sure anyway */
            walk->declined = 1;
            return NULL;
        }
        return Py_NewRef(name);
    }
    if (PyErr_Occurred()) {
        Py_DECREF(key);
        return NULL;
    }
    name = PyObject_CallMethod(walk->chunk, "_name", "O", key);
    Py_DECREF(key);
    if (name != NULL && !PyUnicode_Check(name)) {
        Py_DECREF(name);
        walk->declined = 1;
        return NULL;
    }
    return name;
}

/* UTF-16LE text as ``codecs.utf_16_le_decode(raw, "replace", True)[0]`` (no NUL stripping). */
static PyObject *utf16_plain(Walk *walk, Py_ssize_t start, Py_ssize_t end)
{
    if (end > walk->length)
        end = walk->length; /* as a Python slice */
    if (end < start)
        end = start;
    if (((end - start) & 1) == 0) {
        PyObject *text = latin1_units(walk->data + start, (end - start) / 2);
        if (text != NULL || PyErr_Occurred())
            return text;
    }
    int byteorder = -1;
    return PyUnicode_DecodeUTF16((const char *)walk->data + start, end - start, "replace", &byteorder);
}

/* gene's rank suffix for a repeated key: Data, Data1, Data2... */
static PyObject *unique_key(PyObject *out, PyObject *key)
{
    for (long rank = 1;; rank++) {
        PyObject *candidate = PyUnicode_FromFormat("%U%ld", key, rank);
        if (candidate == NULL)
            return NULL;
        int present = PyDict_Contains(out, candidate);
        if (present == 0)
            return candidate;
        Py_DECREF(candidate);
        if (present < 0)
            return NULL;
    }
}

/* ``vigil.events.evtx._shape`` with ``array=None``; steals nothing, returns a new (key, value). */
static PyObject *shape(PyObject *name, PyObject *attrs, PyObject *children, PyObject *texts, int null)
{
    PyObject *key = Py_NewRef(name);
    Py_ssize_t n_children = PyList_GET_SIZE(children);
    int named = 0;
    if (n_children == 0 && PyDict_GET_SIZE(attrs) == 1) {
        PyObject *value = PyDict_GetItemWithError(attrs, str_Name);
        if (value != NULL) {
            named = 1;
            Py_SETREF(key, Py_NewRef(value));
            if (PyDict_DelItem(attrs, str_Name) < 0)
                goto fail;
        }
        else if (PyErr_Occurred())
            goto fail;
    }
    if (n_children) {
        for (Py_ssize_t i = 0; i < n_children; i++) {
            PyObject *pair = PyList_GET_ITEM(children, i);
            PyObject *child_key = PyTuple_GET_ITEM(pair, 0);
            int present = PyDict_Contains(attrs, child_key);
            if (present < 0)
                goto fail;
            if (present) {
                PyObject *ranked = unique_key(attrs, child_key);
                if (ranked == NULL)
                    goto fail;
                int failed = PyDict_SetItem(attrs, ranked, PyTuple_GET_ITEM(pair, 1));
                Py_DECREF(ranked);
                if (failed < 0)
                    goto fail;
            }
            else if (PyDict_SetItem(attrs, child_key, PyTuple_GET_ITEM(pair, 1)) < 0)
                goto fail;
        }
        PyObject *result = PyTuple_Pack(2, key, attrs);
        Py_DECREF(key);
        return result;
    }
    PyObject *scalar;
    if (PyList_GET_SIZE(texts))
        scalar = PyUnicode_Join(str_empty, texts);
    else if (null)
        scalar = Py_NewRef(Py_None);
    else if (named)
        scalar = Py_NewRef(str_empty);
    else {
        PyObject *result = PyTuple_Pack(2, key, attrs);
        Py_DECREF(key);
        return result;
    }
    if (scalar == NULL)
        goto fail;
    PyObject *result;
    if (PyDict_GET_SIZE(attrs)) {
        if (PyDict_SetItem(attrs, str_Value, scalar) < 0) {
            Py_DECREF(scalar);
            goto fail;
        }
        result = PyTuple_Pack(2, key, attrs);
    }
    else
        result = PyTuple_Pack(2, key, scalar);
    Py_DECREF(scalar);
    Py_DECREF(key);
    return result;
fail:
    Py_DECREF(key);
    return NULL;
}

/* The (key, value) of a text-only element: ``(name, text)``, ``(attrs["Name"], text)`` or shaped. */
static PyObject *text_element(PyObject *name, PyObject *attrs, PyObject *text)
{
    Py_ssize_t n_attrs = PyDict_GET_SIZE(attrs);
    if (n_attrs == 0)
        return PyTuple_Pack(2, name, text);
    if (n_attrs == 1) {
        PyObject *value = PyDict_GetItemWithError(attrs, str_Name);
        if (value != NULL)
            return PyTuple_Pack(2, value, text);
        if (PyErr_Occurred())
            return NULL;
    }
    PyObject *texts = PyList_New(1);
    PyObject *children = PyList_New(0);
    PyObject *result = NULL;
    if (texts != NULL && children != NULL) {
        PyList_SET_ITEM(texts, 0, Py_NewRef(text));
        result = shape(name, attrs, children, texts, 0);
    }
    Py_XDECREF(texts);
    Py_XDECREF(children);
    return result;
}

/* An attribute's value that is not one plain text: texts and substitutions (a substitution is a
 * null here; an optional one drops the attribute).  Sets *dropped, returns the joined text, or
 * NULL (declined for references and anything else). */
static PyObject *attribute_content(Walk *walk, Py_ssize_t *pos, int *dropped)
{
    PyObject *texts = PyList_New(0);
    if (texts == NULL)
        return NULL;
    *dropped = 0;
    for (;;) {
        int token = byte_at(walk, *pos);
        if (token == 0x05 || token == 0x45) {
            if (*pos + 4 > walk->length)
                DECLINE(walk);
            Py_ssize_t end = *pos + 4 + 2 * (Py_ssize_t)u16_at(walk->data + *pos + 2);
            if (!*dropped) {
                PyObject *text = utf16_plain(walk, *pos + 4, end);
                if (text == NULL || PyList_Append(texts, text) < 0) {
                    Py_XDECREF(text);
                    goto fail;
                }
                Py_DECREF(text);
            }
            *pos = end;
        }
        else if (token == 0x0D || token == 0x0E) {
            if (*pos + 3 > walk->length)
                DECLINE(walk);
            if (token == 0x0E)
                *dropped = 1; /* the parts after it are still walked */
            *pos += 4;
        }
        else if ((token & 0x0F) == 0x08 || (token & 0x0F) == 0x09 || (token & 0x0F) == 0x07)
            DECLINE(walk); /* references and CDATA: the Python walk */
        else
            break;
    }
    PyObject *joined = PyUnicode_Join(str_empty, texts);
    Py_DECREF(texts);
    return joined;
fail:
    Py_DECREF(texts);
    return NULL;
}

static PyObject *render_element(Walk *walk, Py_ssize_t *at, int root, int depth)
{
    Py_ssize_t pos = *at;
    PyObject *name = NULL, *attrs = NULL, *children = NULL, *texts = NULL, *result = NULL;
    if (depth > walk->max_depth)
        DECLINE(walk);
    int token = byte_at(walk, pos);
    uint32_t offset;
    Py_ssize_t field;
    if (!u32_in(walk, pos + 7, &offset))
        DECLINE(walk);
    if (offset == pos + 11 || (NAMES_START <= offset && offset < pos))
        field = pos + 7;
    else {
        if (!u32_in(walk, pos + 5, &offset))
            DECLINE(walk);
        if (offset == pos + 9 || (NAMES_START <= offset && offset < pos))
            field = pos + 5;
        else
            DECLINE(walk);
    }
    name = name_at_offset(walk, offset);
    if (name == NULL)
        goto fail;
    pos = offset == field + 4 ? field + 14 + 2 * PyUnicode_GET_LENGTH(name) : field + 4;
    attrs = PyDict_New();
    if (attrs == NULL)
        goto fail;
    if (token & 0x40) {
        pos += 4; /* attribute list size */
        for (;;) {
            int next = byte_at(walk, pos);
            if (next < 0)
                DECLINE(walk);
            if ((next & 0x0F) != T_ATTRIBUTE)
                break;
            if (!u32_in(walk, pos + 1, &offset))
                DECLINE(walk);
            PyObject *attr_name = name_at_offset(walk, offset);
            if (attr_name == NULL)
                goto fail;
            pos = offset == pos + 5 ? pos + 15 + 2 * PyUnicode_GET_LENGTH(attr_name) : pos + 5;
            int first = byte_at(walk, pos);
            if ((first == 0x05 || first == 0x45) && pos + 4 <= walk->length) {
                Py_ssize_t end = pos + 4 + 2 * (Py_ssize_t)u16_at(walk->data + pos + 2);
                int after = byte_at(walk, end);
                if (after == 0x06 || after == 0x46 || after == T_CLOSE_START || after == T_CLOSE_EMPTY) {
                    if (!root) {
                        PyObject *text = utf16_plain(walk, pos + 4, end);
                        if (text == NULL || PyDict_SetItem(attrs, attr_name, text) < 0) {
                            Py_XDECREF(text);
                            Py_DECREF(attr_name);
                            goto fail;
                        }
                        Py_DECREF(text);
                    }
                    Py_DECREF(attr_name);
                    pos = end;
                    continue;
                }
            }
            int dropped;
            PyObject *text = attribute_content(walk, &pos, &dropped);
            if (text == NULL) {
                Py_DECREF(attr_name);
                goto fail;
            }
            int failed = !root && !dropped ? PyDict_SetItem(attrs, attr_name, text) : 0;
            Py_DECREF(text);
            Py_DECREF(attr_name);
            if (failed < 0)
                goto fail;
        }
    }
    token = byte_at(walk, pos);
    if (token == T_CLOSE_EMPTY) {
        *at = pos + 1;
        Py_ssize_t n_attrs = PyDict_GET_SIZE(attrs);
        if (n_attrs == 0) {
            result = PyTuple_Pack(2, name, attrs);
            goto done;
        }
        if (n_attrs == 1) {
            PyObject *value = PyDict_GetItemWithError(attrs, str_Name);
            if (value != NULL) {
                result = PyTuple_Pack(2, value, str_empty);
                goto done;
            }
            if (PyErr_Occurred())
                goto fail;
        }
        children = PyList_New(0);
        texts = PyList_New(0);
        if (children == NULL || texts == NULL)
            goto fail;
        result = shape(name, attrs, children, texts, 0);
        goto done;
    }
    if (token != T_CLOSE_START)
        DECLINE(walk);
    pos += 1;
    token = byte_at(walk, pos);
    if ((token == 0x05 || token == 0x45) && pos + 4 <= walk->length) {
        Py_ssize_t end = pos + 4 + 2 * (Py_ssize_t)u16_at(walk->data + pos + 2);
        if (byte_at(walk, end) == T_END) { /* the commonest content: one text */
            PyObject *text = utf16_plain(walk, pos + 4, end);
            if (text == NULL)
                goto fail;
            result = text_element(name, attrs, text);
            Py_DECREF(text);
            *at = end + 1;
            goto done;
        }
    }
    children = PyList_New(0);
    texts = PyList_New(0);
    if (children == NULL || texts == NULL)
        goto fail;
    int null = 0;
    for (;;) {
        token = byte_at(walk, pos);
        PyObject *item = NULL;
        if (token == 0x05 || token == 0x45) {
            if (pos + 4 > walk->length)
                DECLINE(walk);
            Py_ssize_t count = u16_at(walk->data + pos + 2);
            item = utf16_plain(walk, pos + 4, pos + 4 + 2 * count);
            pos += 4 + 2 * count;
            if (item == NULL || PyList_Append(texts, item) < 0) {
                Py_XDECREF(item);
                goto fail;
            }
        }
        else if (token == T_OPEN || token == 0x41) {
            item = render_element(walk, &pos, 0, depth + 1);
            if (item == NULL || PyList_Append(children, item) < 0) {
                Py_XDECREF(item);
                goto fail;
            }
        }
        else if (token == 0x0D || token == 0x0E) {
            null = 1;
            pos += 4;
            continue;
        }
        else if (token == 0x08 || token == 0x48) {
            if (pos + 3 > walk->length)
                DECLINE(walk);
            item = PyUnicode_FromOrdinal(u16_at(walk->data + pos + 1));
            pos += 3;
            if (item == NULL || PyList_Append(texts, item) < 0) {
                Py_XDECREF(item);
                goto fail;
            }
        }
        else if (token == 0x07 || token == 0x47) {
            if (pos + 3 > walk->length)
                DECLINE(walk);
            Py_ssize_t count = u16_at(walk->data + pos + 1);
            item = utf16_plain(walk, pos + 3, pos + 3 + 2 * count);
            pos += 3 + 2 * count;
            if (item == NULL || PyList_Append(texts, item) < 0) {
                Py_XDECREF(item);
                goto fail;
            }
        }
        else if (token == 0x0B) {
            if (pos + 3 > walk->length)
                DECLINE(walk);
            pos += 3 + 2 * (Py_ssize_t)u16_at(walk->data + pos + 1);
            continue;
        }
        else if (token == 0x09 || token == 0x49 || token == 0x0A)
            DECLINE(walk); /* entity references, processing instructions: the Python walk */
        else
            break;
        Py_DECREF(item);
    }
    if (byte_at(walk, pos) != T_END)
        DECLINE(walk);
    *at = pos + 1;
    result = shape(name, attrs, children, texts, null);
done:
    Py_XDECREF(name);
    Py_XDECREF(attrs);
    Py_XDECREF(children);
    Py_XDECREF(texts);
    return result;
fail:
    Py_XDECREF(name);
    Py_XDECREF(attrs);
    Py_XDECREF(children);
    Py_XDECREF(texts);
    return NULL;
}

/* render_tree(data, pos, root, chunk, max_depth) -> ((key, value), end) or None: see the section comment. */
static PyObject *render_tree(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "render_tree(data, pos, root, chunk, max_depth)");
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "render_tree: data must be bytes");
        return NULL;
    }
    Walk walk = {(const unsigned char *)PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), args[3], NULL, 0, 0};
    walk.max_depth = PyLong_AsLong(args[4]);
    if (walk.max_depth == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    int root = PyObject_IsTrue(args[2]);
    if (root < 0)
        return NULL;
    walk.names = PyObject_GetAttrString(walk.chunk, "names");
    if (walk.names == NULL)
        return NULL;
    if (!PyDict_Check(walk.names)) {
        Py_DECREF(walk.names);
        PyErr_SetString(PyExc_TypeError, "render_tree: chunk.names must be a dict");
        return NULL;
    }
    PyObject *rendered = render_element(&walk, &pos, root, 0);
    Py_DECREF(walk.names);
    if (rendered == NULL) {
        if (walk.declined && !PyErr_Occurred())
            Py_RETURN_NONE;
        return NULL;
    }
    PyObject *end = PyLong_FromSsize_t(pos);
    if (end == NULL) {
        Py_DECREF(rendered);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, rendered, end);
    Py_DECREF(rendered);
    Py_DECREF(end);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_values", (PyCFunction)(void (*)(void))decode_values, METH_FASTCALL,
     "decode_values(data, pos, chunk) -> (values, end) or None\n\n"
     "The substitution values at ``pos`` of a chunk, as ``Chunk._values`` decodes them."},
    {"render_tree", (PyCFunction)(void (*)(void))render_tree, METH_FASTCALL,
     "render_tree(data, pos, root, chunk, max_depth) -> ((key, value), end) or None\n\n"
     "An element written out in a record, as ``Chunk._render_tree`` renders it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_binxml_values", "BinXML substitution values decoded in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__binxml_values(void)
{
    str_Name = PyUnicode_InternFromString("Name");
    str_Value = PyUnicode_InternFromString("Value");
    str_empty = PyUnicode_InternFromString("");
    if (str_Name == NULL || str_Value == NULL || str_empty == NULL)
        return NULL;
    return PyModule_Create(&module);
}
