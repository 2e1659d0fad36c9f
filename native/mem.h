/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The traced program's memory, seen from the recorder (included once, by recorder.c):
 * - umem_read(): copies from a user pointer without ever faulting, because ioctl arguments
 *   may be bogus on purpose (the kernel answers EFAULT) and the recorder must not crash
 *   the program where the kernel would not;
 * - the "interesting" ranges: memory that was mmapped from a recorded fd or handed to the
 *   IOMMU (IOAS_MAP, VFIO_IOMMU_MAP_DMA). munmap/madvise/MAP_FIXED are recorded only when
 *   they touch one, so the trace is not flooded by malloc's own mappings.
 */
#ifndef IOTRAIL_MEM_H
#define IOTRAIL_MEM_H

static int move_high(int fd);

static int vm_readv_off;
static pthread_mutex_t pipe_mu = PTHREAD_MUTEX_INITIALIZER;
static int probe_pipe[2] = { -1, -1 };

/* Fallback where process_vm_readv is filtered (seccomp): write() from the user buffer into a
 * pipe fails with EFAULT instead of a signal. */
static size_t pipe_read(void *dst, uint64_t src, size_t len)
{
	size_t done = 0;
	pthread_mutex_lock(&pipe_mu);
	if (probe_pipe[0] < 0) {
		int p[2];
		if (syscall(SYS_pipe2, p, O_CLOEXEC | O_NONBLOCK) == 0) {
			probe_pipe[0] = move_high(p[0]);
			probe_pipe[1] = move_high(p[1]);
		}
	}
	while (probe_pipe[0] >= 0 && done < len) {
		size_t chunk = len - done > 4096 ? 4096 : len - done;
		long w = syscall(SYS_write, probe_pipe[1], (const char *)(uintptr_t)src + done, chunk);
		if (w <= 0)
			break;
		long r = syscall(SYS_read, probe_pipe[0], (char *)dst + done, w);
		if (r != w)
			break;
		done += w;
	}
	pthread_mutex_unlock(&pipe_mu);
	return done;
}

/* Bytes copied: fewer than len when the range runs into unreadable memory. */
static size_t umem_read(void *dst, uint64_t src, size_t len)
{
	if (!len || !src)
		return 0;
	if (!__atomic_load_n(&vm_readv_off, __ATOMIC_RELAXED)) {
		struct iovec l = { dst, len }, r = { (void *)(uintptr_t)src, len };
		int saved = errno;
		long n = syscall(SYS_process_vm_readv, getpid(), &l, 1UL, &r, 1UL, 0UL);
		int err = errno;
		errno = saved;
		if (n >= 0)
			return n;
		if (err != ENOSYS && err != EPERM && err != EACCES)
			return 0;
		__atomic_store_n(&vm_readv_off, 1, __ATOMIC_RELAXED);
	}
	return pipe_read(dst, src, len);
}

#define RANGES_MAX 4096
static pthread_mutex_t ranges_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { uint64_t start, end; } ranges[RANGES_MAX];
static int nranges, ranges_full;

static void range_add(uint64_t start, uint64_t len)
{
	if (!len || start + len < start)
		return;
	pthread_mutex_lock(&ranges_mu);
	if (nranges < RANGES_MAX) {
		ranges[nranges].start = start;
		ranges[nranges++].end = start + len;
	} else {
		ranges_full = 1; /* from now on over-record rather than miss an unmap */
	}
	pthread_mutex_unlock(&ranges_mu);
}

static int range_hit(uint64_t start, uint64_t len)
{
	uint64_t end = start + len < start ? UINT64_MAX : start + len;
	int hit;
	pthread_mutex_lock(&ranges_mu);
	hit = ranges_full;
	for (int i = 0; i < nranges && !hit; i++)
		hit = ranges[i].start < end && start < ranges[i].end;
	pthread_mutex_unlock(&ranges_mu);
	return hit;
}

/* After a munmap: forget covered ranges, trim partly covered ones at either edge. A hole
 * punched in the middle keeps the whole range, which only over-records. */
static void range_remove(uint64_t start, uint64_t len)
{
	uint64_t end = start + len < start ? UINT64_MAX : start + len;
	pthread_mutex_lock(&ranges_mu);
	for (int i = 0; i < nranges; i++) {
		if (start <= ranges[i].start && ranges[i].end <= end)
			ranges[i--] = ranges[--nranges];
		else if (start <= ranges[i].start && end > ranges[i].start)
			ranges[i].start = end;
		else if (end >= ranges[i].end && start < ranges[i].end)
			ranges[i].end = start;
	}
	pthread_mutex_unlock(&ranges_mu);
}

#endif
