/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A growable buffer that builds one JSON Lines record of an iotrail trace.
 *
 * Allocation failure is sticky (`oom`) instead of fatal: the recorder must never
 * take the traced program down, so a record that could not be built is dropped
 * and the caller reports it once.
 */
#ifndef IOTRAIL_JBUF_H
#define IOTRAIL_JBUF_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jbuf {
	char *p;
	size_t n, cap;
	int oom;
	int comma; /* a value was just completed, so the next one needs a separator */
};

/* 2^53 - 1: larger integers lose precision as JSON numbers, so the format wants strings. */
#define JB_MAX_SAFE 9007199254740991ULL

static int jb_reserve(struct jbuf *j, size_t more)
{
	if (j->oom)
		return 0;
	if (j->n + more + 1 <= j->cap)
		return 1;
	size_t cap = j->cap ? j->cap : 512;
	while (cap < j->n + more + 1)
		cap *= 2;
	char *p = realloc(j->p, cap);
	if (!p) {
		j->oom = 1;
		return 0;
	}
	j->p = p;
	j->cap = cap;
	return 1;
}

static void jb_raw(struct jbuf *j, const char *s, size_t len)
{
	if (!jb_reserve(j, len))
		return;
	memcpy(j->p + j->n, s, len);
	j->n += len;
	j->p[j->n] = 0;
}

static void jb_cstr(struct jbuf *j, const char *s) { jb_raw(j, s, strlen(s)); }

static void jb_sep(struct jbuf *j)
{
	if (j->comma)
		jb_raw(j, ",", 1);
	j->comma = 0;
}

static void jb_open(struct jbuf *j, char c)
{
	jb_sep(j);
	jb_raw(j, &c, 1);
}

static void jb_close(struct jbuf *j, char c)
{
	jb_raw(j, &c, 1);
	j->comma = 1;
}

static void jb_key(struct jbuf *j, const char *k)
{
	jb_sep(j);
	jb_raw(j, "\"", 1);
	jb_cstr(j, k);
	jb_raw(j, "\":", 2);
}

static void jb_fmt_value(struct jbuf *j, const char *s)
{
	jb_sep(j);
	jb_cstr(j, s);
	j->comma = 1;
}

static void jb_u64(struct jbuf *j, uint64_t v)
{
	char b[32];
	if (v <= JB_MAX_SAFE)
		snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
	else
		snprintf(b, sizeof(b), "\"0x%llx\"", (unsigned long long)v);
	jb_fmt_value(j, b);
}

static void jb_i64(struct jbuf *j, int64_t v)
{
	char b[32];
	snprintf(b, sizeof(b), "%lld", (long long)v);
	jb_fmt_value(j, b);
}

static void jb_bool(struct jbuf *j, int v) { jb_fmt_value(j, v ? "true" : "false"); }

/* Length of a valid UTF-8 sequence at s, or 0: the trace must stay valid UTF-8 even
 * when a program passes arbitrary bytes as a path or memfd name. */
static size_t jb_utf8_len(const unsigned char *s, size_t left)
{
	size_t len;
	uint32_t min;
	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) { len = 2; min = 0x80; }
	else if ((s[0] & 0xf0) == 0xe0) { len = 3; min = 0x800; }
	else if ((s[0] & 0xf8) == 0xf0) { len = 4; min = 0x10000; }
	else return 0;
	if (len > left)
		return 0;
	uint32_t cp = s[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static void jb_strn(struct jbuf *j, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	jb_sep(j);
	jb_raw(j, "\"", 1);
	for (size_t i = 0; i < len;) {
		unsigned char c = u[i];
		char e[8];
		if (c == '"' || c == '\\') {
			e[0] = '\\'; e[1] = (char)c;
			jb_raw(j, e, 2);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(e, sizeof(e), "\\u%04x", c);
			jb_raw(j, e, 6);
			i++;
		} else {
			size_t l = jb_utf8_len(u + i, len - i);
			if (l)
				jb_raw(j, s + i, l);
			else
				jb_raw(j, "\\ufffd", 6);
			i += l ? l : 1;
		}
	}
	jb_raw(j, "\"", 1);
	j->comma = 1;
}

static void jb_str(struct jbuf *j, const char *s) { jb_strn(j, s, strlen(s)); }

/* Byte strings are lowercase hex without a prefix (trace format, "Values"). */
static void jb_hex(struct jbuf *j, const void *data, size_t len)
{
	static const char dig[] = "0123456789abcdef";
	const unsigned char *d = data;
	jb_sep(j);
	if (!jb_reserve(j, 2 * len + 2))
		return;
	j->p[j->n++] = '"';
	for (size_t i = 0; i < len; i++) {
		j->p[j->n++] = dig[d[i] >> 4];
		j->p[j->n++] = dig[d[i] & 15];
	}
	j->p[j->n++] = '"';
	j->p[j->n] = 0;
	j->comma = 1;
}

static void jb_free(struct jbuf *j)
{
	free(j->p);
	memset(j, 0, sizeof(*j));
}

#endif
