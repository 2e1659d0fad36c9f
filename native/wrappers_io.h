/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ftruncate/read/write/pread/pwrite on recorded fds (included once, by wrappers.h):
 * memfd sizes, fault-queue records and responses, VFIO config-space accesses.
 */
#ifndef IOTRAIL_WRAPPERS_IO_H
#define IOTRAIL_WRAPPERS_IO_H

/* One data-carrying event. pos: pread/pwrite. in: the buffer holds data the call consumed
 * (write); otherwise what the call produced (read). */
static void rec_io(const char *op, int fd, const void *buf, size_t count, int pos, int64_t off, int in, long ret)
{
	int err = errno;
	struct jbuf j = { 0 };
	const char *note = NULL;
	in_rec = 1;
	ev_begin(&j, op);
	jb_key(&j, "fd"); jb_i64(&j, fd);
	if (pos) {
		jb_key(&j, "offset"); jb_i64(&j, off);
	}
	if (in) {
		unsigned char *d = count <= INLINE_MAX ? malloc(count ? count : 1) : NULL;
		size_t got = d ? umem_read(d, (uintptr_t)buf, count) : 0;
		/* "data" is required: when the bytes cannot be shown, an empty string keeps the
		 * event readable and the note says why. */
		if (d && got == count) {
			jb_key(&j, "data"); jb_hex(&j, d, count);
		} else {
			jb_key(&j, "data"); jb_str(&j, "");
			note = count > INLINE_MAX ? "data larger than 64 KiB not recorded" : "data not readable";
		}
		free(d);
	} else {
		jb_key(&j, "count"); jb_u64(&j, count);
	}
	ev_result(&j, ret, err);
	if (!in && ret >= 0) {
		if (ret <= INLINE_MAX) {
			jb_key(&j, "out");
			jb_open(&j, '{');
			jb_key(&j, "data"); jb_hex(&j, buf, ret); /* the kernel just wrote these bytes */
			jb_close(&j, '}');
		} else {
			note = "data larger than 64 KiB not recorded";
		}
	}
	ev_end(&j, note);
	in_rec = 0;
	errno = err;
}

#define IO_WRAPPER(ret_t, name, params, call, op, buf, count, pos, off, in) \
	ret_t name params \
	{ \
		ret_t ret = REAL(name) call; \
		if (fd_kind(fd) && active()) \
			rec_io(op, fd, buf, count, pos, off, in, ret); \
		return ret; \
	}

IO_WRAPPER(ssize_t, read, (int fd, void *buf, size_t count), (fd, buf, count), "read", buf, count, 0, 0, 0)
IO_WRAPPER(ssize_t, write, (int fd, const void *buf, size_t count), (fd, buf, count), "write", buf, count, 0, 0, 1)
IO_WRAPPER(ssize_t, pread, (int fd, void *buf, size_t count, off_t off), (fd, buf, count, off), "pread", buf,
	   count, 1, off, 0)
IO_WRAPPER(ssize_t, pwrite, (int fd, const void *buf, size_t count, off_t off), (fd, buf, count, off), "pwrite",
	   buf, count, 1, off, 1)

static void rec_ftruncate(int fd, int64_t len, int ret)
{
	int err = errno;
	struct jbuf j = { 0 };
	in_rec = 1;
	ev_begin(&j, "ftruncate");
	jb_key(&j, "fd"); jb_i64(&j, fd);
	jb_key(&j, "length"); jb_u64(&j, (uint64_t)len);
	ev_result(&j, ret, err);
	ev_end(&j, NULL);
	in_rec = 0;
	errno = err;
}

int ftruncate(int fd, off_t len)
{
	int ret = REAL(ftruncate)(fd, len);
	if (fd_kind(fd) && active())
		rec_ftruncate(fd, len, ret);
	return ret;
}

#ifdef __GLIBC__
DECL_REAL(pread64); DECL_REAL(pwrite64); DECL_REAL(ftruncate64);
IO_WRAPPER(ssize_t, pread64, (int fd, void *buf, size_t count, off64_t off), (fd, buf, count, off), "pread", buf,
	   count, 1, off, 0)
IO_WRAPPER(ssize_t, pwrite64, (int fd, const void *buf, size_t count, off64_t off), (fd, buf, count, off),
	   "pwrite", buf, count, 1, off, 1)

int ftruncate64(int fd, off64_t len)
{
	int ret = REAL(ftruncate64)(fd, len);
	if (fd_kind(fd) && active())
		rec_ftruncate(fd, len, ret);
	return ret;
}
#endif

#endif
