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

static PyObject *ascii_text(const char *text, int length)
{
    return PyUnicode_DecodeASCII(text, length, NULL);
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

static PyObject *guid_text(const unsigned char *p)
{
    char text[40];
    int n = snprintf(text, sizeof text, "%08X-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X",
                     (unsigned)u32_at(p), (unsigned)u16_at(p + 4), (unsigned)u16_at(p + 6), p[8], p[9],
                     p[10], p[11], p[12], p[13], p[14], p[15]);
    return ascii_text(text, n);
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
    int n = snprintf(text, sizeof text, "%llu", value);
    return ascii_text(text, n);
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

static PyMethodDef methods[] = {
    {"decode_values", (PyCFunction)(void (*)(void))decode_values, METH_FASTCALL,
     "decode_values(data, pos, chunk) -> (values, end) or None\n\n"
     "The substitution values at ``pos`` of a chunk, as ``Chunk._values`` decodes them."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_binxml_values", "BinXML substitution values decoded in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__binxml_values(void) { return PyModule_Create(&module); }
