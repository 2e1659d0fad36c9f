/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Turns one ioctl on a recorded fd into the "cmd"/"arg" (before the call) and
 * "ret"/"errno"/"out" (after it) members of an iotrail trace event, driven by the
 * layouts in uapi_table.h. Included once, by recorder.c, which supplies umem_read()
 * (a fault-proof read of the traced program's memory) and track_fd().
 */
#ifndef IOTRAIL_DECODE_H
#define IOTRAIL_DECODE_H

#include "jbuf.h"
#include "uapi_table.h"

static size_t umem_read(void *dst, uint64_t src, size_t len);
static void track_fd(int fd, int kind);

#define INLINE_MAX 65536 /* bytes of pointed-to data copied inline; beyond, the raw pointer */
#define TAIL_MAX 4096    /* bytes beyond the struct the kernel may read (size rules) or write (caps) */
#define STRUCT_MAX 128

struct ioc {
	const struct cdesc *c;
	const struct sdesc *s;
	int retfd;
	uint64_t argp;
	uint32_t cmd;
	int kind;
	unsigned char pre[STRUCT_MAX];
	size_t have;        /* bytes of pre that could be read */
	uint32_t usize;     /* the caller's size/argsz */
	unsigned char *ptrsnap; /* pointed-to data before the call, to spot kernel writes on failure */
	size_t ptrsnap_len;
	unsigned char *tailsnap;
	size_t tailsnap_len;
	char note[320];
};

static void jb_errno(struct jbuf *j, int err)
{
	if (err > 0 && err < (int)NEL(errno_names) && errno_names[err])
		jb_str(j, errno_names[err]);
	else
		jb_i64(j, err);
}

static void ioc_note(struct ioc *r, const char *what)
{
	size_t n = strlen(r->note);
	snprintf(r->note + n, sizeof(r->note) - n, "%s%s", n ? "; " : "", what);
}

static size_t fwidth(const struct fdesc *f)
{
	switch (f->type) {
	case T_U8: return 1;
	case T_U16: return 2;
	case T_RES3: return 3;
	case T_U32: case T_S32: case T_TESTOP: return 4;
	default: return 8;
	}
}

static uint64_t fval(const unsigned char *b, const struct fdesc *f)
{
	uint8_t v8; uint16_t v16; uint32_t v32; uint64_t v64;
	switch (fwidth(f)) {
	case 1: memcpy(&v8, b + f->off, 1); return v8;
	case 2: memcpy(&v16, b + f->off, 2); return v16;
	case 3: return b[f->off] | (b[f->off + 1] << 8) | ((uint32_t)b[f->off + 2] << 16);
	case 4: memcpy(&v32, b + f->off, 4); return v32;
	default: memcpy(&v64, b + f->off, 8); return v64;
	}
}

static void emit_scalar(struct jbuf *j, const unsigned char *b, const struct fdesc *f)
{
	uint64_t v = fval(b, f);
	if (f->type == T_S32) {
		jb_i64(j, (int32_t)v);
	} else if (f->type == T_RES3) {
		jb_hex(j, b + f->off, 3);
	} else if (f->type == T_TESTOP && v < NEL(test_ops) && test_ops[v].op) {
		jb_str(j, test_ops[v].op);
	} else {
		jb_u64(j, v);
	}
}

static int is_ptr(const struct fdesc *f) { return f->type >= T_RANGES && f->type <= T_FIX16; }

/* Bytes a pointer field refers to, from the element counts in the struct image b. */
static uint64_t ptr_len(const struct sdesc *s, const struct fdesc *f, const unsigned char *b)
{
	uint64_t c1 = f->cnt >= 0 ? fval(b, &s->f[f->cnt]) : 0;
	uint64_t c2 = f->cnt2 >= 0 ? fval(b, &s->f[f->cnt2]) : 0;
	switch (f->type) {
	case T_RANGES: return c1 * 16;
	case T_BLOB: return c1;
	case T_BLOBMUL: return (c1 && c2 > UINT64_MAX / c1) ? UINT64_MAX : c1 * c2;
	case T_BITMAP: return c2 ? ((c1 / c2 + 63) / 64) * 8 : 0;
	case T_FIX16: return 16;
	default: return 0;
	}
}

static void emit_data(struct jbuf *j, const struct fdesc *f, const unsigned char *d, size_t len)
{
	if (f->type != T_RANGES) {
		jb_hex(j, d, len);
		return;
	}
	jb_open(j, '[');
	for (size_t i = 0; i + 16 <= len; i += 16) {
		uint64_t v[2];
		memcpy(v, d + i, 16);
		jb_open(j, '{');
		jb_key(j, "start"); jb_u64(j, v[0]);
		jb_key(j, "last"); jb_u64(j, v[1]);
		jb_close(j, '}');
	}
	jb_close(j, ']');
}

/* Pointer field in "arg": the data inline when the kernel reads it, else the raw pointer
 * (which the format reads as an address in the trace's user memory). */
static void emit_ptr_in(struct jbuf *j, struct ioc *r, const struct fdesc *f)
{
	uint64_t p = fval(r->pre, f), len = ptr_len(r->s, f, r->pre);
	int inline_ok = (f->dir & IN) || f->type == T_RANGES;
	jb_key(j, f->name);
	if (!p || !len || len > INLINE_MAX) {
		if (p && len > INLINE_MAX)
			ioc_note(r, "pointed-to data too large to copy; recorded as a pointer");
		jb_u64(j, p);
		return;
	}
	unsigned char *d = malloc(len);
	if (d && umem_read(d, p, len) == len) {
		if (inline_ok)
			emit_data(j, f, d, len);
		else
			jb_u64(j, p);
		if (f->dir & OUT) {
			r->ptrsnap = d;
			r->ptrsnap_len = len;
			return;
		}
	} else {
		ioc_note(r, d ? "pointed-to data not readable; recorded as a pointer" : "out of memory");
		jb_u64(j, p);
	}
	free(d);
}

static void emit_fields_in(struct jbuf *j, struct ioc *r, int nested)
{
	size_t lim = r->usize < r->have ? r->usize : r->have;
	for (unsigned i = 0; i < r->s->nfields; i++) {
		const struct fdesc *f = &r->s->f[i];
		/* size/argsz itself is always shown: a too-small size is what the call is about */
		if (f->nested != nested || (f->off + fwidth(f) > lim && f->off))
			continue;
		if (is_ptr(f)) {
			emit_ptr_in(j, r, f);
			continue;
		}
		if (!(f->dir & IN))
			continue;
		if ((f->omit0 || f->type == T_RES3) && !fval(r->pre, f))
			continue;
		jb_key(j, f->name);
		emit_scalar(j, r->pre, f);
	}
}

/* Output fields: all of them when the call succeeded; after a failure only those the
 * kernel changed (EMSGSIZE's num_iovas, HWPT_INVALIDATE's entry_num), since the
 * rest were never written. */
static void emit_fields_out(struct jbuf *j, struct ioc *r, const unsigned char *post, size_t have2,
			    int ok, int nested)
{
	size_t lim = r->usize;
	if (lim > r->s->size) lim = r->s->size;
	if (lim > have2) lim = have2;
	for (unsigned i = 0; i < r->s->nfields; i++) {
		const struct fdesc *f = &r->s->f[i];
		size_t w = fwidth(f);
		if (f->nested != nested || !(f->dir & OUT) || f->off + w > lim)
			continue;
		if (!is_ptr(f)) {
			if (!ok && !memcmp(r->pre + f->off, post + f->off, w))
				continue;
			jb_key(j, f->name);
			emit_scalar(j, post, f);
			if (ok && f->fdk)
				track_fd((int32_t)fval(post, f), f->fdk);
			continue;
		}
		uint64_t p = fval(r->pre, f), len = ptr_len(r->s, f, post);
		if (len > r->ptrsnap_len)
			len = r->ptrsnap_len; /* the kernel writes no more than the caller offered */
		if (!p || !r->ptrsnap)
			continue;
		unsigned char *d = malloc(len ? len : 1);
		if (d && umem_read(d, p, len) == len && (ok || memcmp(d, r->ptrsnap, len))) {
			jb_key(j, f->name);
			emit_data(j, f, d, len);
		}
		free(d);
	}
}

/* The kernel answers EFAULT for an unreadable argument just as for NULL, so NULL is the
 * closest the trace can say. */
static void arg_unreadable(struct jbuf *j, struct ioc *r)
{
	char b[96];
	snprintf(b, sizeof(b), "argument pointer 0x%llx not readable; recorded as null", (unsigned long long)r->argp);
	ioc_note(r, b);
	jb_key(j, "arg");
	jb_fmt_value(j, "null");
}

static void ioc_before_struct(struct jbuf *j, struct ioc *r)
{
	r->have = umem_read(r->pre, r->argp, r->s->size);
	if (r->have < 4) {
		arg_unreadable(j, r);
		return;
	}
	memcpy(&r->usize, r->pre, 4);
	if (r->c && r->c->argt == A_TEST) {
		uint32_t op = 0;
		if (r->have >= 8)
			memcpy(&op, r->pre + 4, 4);
		if (op >= NEL(test_ops) || !test_ops[op].op) {
			op = 0;
			ioc_note(r, "unknown IOMMU_TEST_OP: union not decoded");
		}
		r->s = &test_ops[op].s;
		r->retfd = test_ops[op].retfd;
	}
	jb_key(j, "arg");
	jb_open(j, '{');
	emit_fields_in(j, r, 0);
	if (r->s->member) {
		jb_key(j, r->s->member);
		jb_open(j, '{');
		emit_fields_in(j, r, 1);
		jb_close(j, '}');
	}
	if (r->usize > r->s->size) {
		size_t want = r->usize - r->s->size;
		if (want > TAIL_MAX) {
			want = TAIL_MAX;
			ioc_note(r, "size beyond the struct exceeds 4096 bytes; tail truncated");
		}
		r->tailsnap = malloc(want);
		if (r->tailsnap)
			r->tailsnap_len = umem_read(r->tailsnap, r->argp + r->s->size, want);
		if (r->tailsnap_len < want)
			ioc_note(r, "tail not fully readable");
		if (r->tailsnap_len) {
			jb_key(j, "tail");
			jb_hex(j, r->tailsnap, r->tailsnap_len);
		}
	}
	jb_close(j, '}');
}

static void ioc_before(struct jbuf *j, struct ioc *r, int kind, uint32_t cmd, uint64_t argp)
{
	char b[160];
	memset(r, 0, sizeof(*r));
	r->argp = argp;
	r->cmd = cmd;
	r->kind = kind;
	for (unsigned i = 0; i < NEL(cmd_table); i++)
		if (cmd_table[i].cmd == cmd && (cmd_table[i].kinds & KM(kind)))
			r->c = &cmd_table[i];
	jb_key(j, "cmd");
	if (!r->c) {
		snprintf(b, sizeof(b), "0x%x", cmd);
		jb_str(j, b);
		jb_key(j, "arg");
		jb_open(j, '{');
		jb_close(j, '}');
		snprintf(b, sizeof(b), "unknown ioctl 0x%x on this fd; argument 0x%llx not decoded", cmd,
			 (unsigned long long)argp);
		ioc_note(r, b);
		return;
	}
	if (r->c->argt & CF_NUMERIC) {
		snprintf(b, sizeof(b), "0x%x", cmd);
		jb_str(j, b);
		ioc_note(r, r->c->name);
	} else {
		jb_str(j, r->c->name);
	}
	r->s = r->c->s;
	r->retfd = r->c->retfd;
	switch (r->c->argt & ~CF_NUMERIC) {
	case A_NONE:
		return;
	case A_INT:
		jb_key(j, "arg");
		jb_u64(j, argp);
		return;
	default:
		break;
	}
	if (!argp) {
		jb_key(j, "arg");
		jb_fmt_value(j, "null");
		return;
	}
	if ((r->c->argt & ~CF_NUMERIC) == A_PINT) {
		int32_t v;
		if (umem_read(&v, argp, 4) == 4) {
			jb_key(j, "arg");
			jb_i64(j, v);
		} else {
			arg_unreadable(j, r);
		}
	} else if ((r->c->argt & ~CF_NUMERIC) == A_STR) {
		char s[4096];
		size_t n = umem_read(s, argp, sizeof(s)), len = strnlen(s, n);
		if (!n) {
			arg_unreadable(j, r);
			return;
		}
		if (len == n)
			ioc_note(r, "no NUL within the readable bytes");
		jb_key(j, "arg");
		jb_strn(j, s, len);
	} else {
		if (!r->s)
			r->s = &test_ops[0].s;
		ioc_before_struct(j, r);
	}
}

static void ioc_after(struct jbuf *j, struct ioc *r, long ret, int err)
{
	int ok = ret != -1;
	if (ok) {
		jb_key(j, "ret");
		jb_i64(j, ret);
		if (r->retfd && ret > 0)
			track_fd((int)ret, r->retfd);
	} else {
		jb_key(j, "errno");
		jb_errno(j, err);
	}
	if (r->c && r->s && r->have >= 4) {
		unsigned char post[STRUCT_MAX];
		size_t have2 = umem_read(post, r->argp, r->s->size);
		struct jbuf o = { 0 }, m = { 0 };
		emit_fields_out(&o, r, post, have2, ok, 0);
		if (r->s->member) {
			emit_fields_out(&m, r, post, have2, ok, 1);
			if (m.n) {
				jb_key(&o, r->s->member);
				jb_open(&o, '{');
				jb_raw(&o, m.p, m.n);
				jb_close(&o, '}');
			}
		}
		if ((r->s->flags & SD_OUT_TAIL) && r->tailsnap_len) {
			unsigned char *t = malloc(r->tailsnap_len);
			if (t && umem_read(t, r->argp + r->s->size, r->tailsnap_len) == r->tailsnap_len &&
			    (ok || memcmp(t, r->tailsnap, r->tailsnap_len))) {
				jb_key(&o, "tail");
				jb_hex(&o, t, r->tailsnap_len);
			}
			free(t);
		}
		if (o.n && (r->s->flags & SD_OUT_NOTE)) {
			struct jbuf t = { 0 };
			jb_cstr(&t, r->note);
			jb_cstr(&t, *r->note ? "; out (iotrail does not compare it): {" : "out (iotrail does not compare it): {");
			jb_raw(&t, o.p, o.n);
			jb_cstr(&t, "}");
			jb_key(j, "note");
			jb_str(j, t.p ? t.p : "");
			*r->note = 0; /* written */
			jb_free(&t);
		} else if (o.n) {
			jb_key(j, "out");
			jb_open(j, '{');
			jb_raw(j, o.p, o.n);
			jb_close(j, '}');
		}
		if (o.oom || m.oom)
			j->oom = 1;
		jb_free(&o);
		jb_free(&m);
	}
	free(r->ptrsnap);
	free(r->tailsnap);
	r->ptrsnap = r->tailsnap = NULL;
}

#endif
