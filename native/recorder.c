// SPDX-License-Identifier: GPL-2.0-only
/*
 * libiotrail_record: an LD_PRELOAD library that writes an iotrail trace (JSON Lines,
 * /work/shared/trace-format.md) of what a program does to /dev/iommu and /dev/vfio/.
 *
 * Invariant: the program must not be able to tell it is being recorded. Every call goes to
 * the next definition (dlsym RTLD_NEXT) with its arguments untouched, its result and errno
 * are handed back unchanged, and a recorder failure only ever costs trace lines, reported
 * once on stderr.
 *
 * Build: cc -shared -fPIC -O2 -o native/build/libiotrail_record.so native/recorder.c -ldl -lpthread
 * Environment: IOTRAIL_RECORD_OUT (trace file, created exclusively), IOTRAIL_RECORD_PATHS
 * (extra colon-separated paths, a trailing '/' making a prefix, optionally "=KIND" with KIND
 * one of iommufd, vfio-container, vfio-group, vfio-device), IOTRAIL_RECORD_SOURCE (header
 * "source" text), IOTRAIL_RECORD_ALL_MMAPS=1 (also record mmaps unrelated to the IOMMU).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "decode.h"
#include "mem.h"

#define FD_MAX (1 << 20)
#define MAX_PATHS 64

/* Set while the recorder itself runs, so that its own allocations (malloc may mmap) and
 * I/O are never recorded. initial-exec: a dynamic TLS access could call malloc. */
static __thread int in_rec __attribute__((tls_model("initial-exec")));

enum { ST_NEW, ST_WRITING, ST_OFF };
static struct {
	pthread_mutex_t mu;
	int state, fd;
	dev_t dev;
	ino_t ino;
	const char *out, *source;
	char *paths[MAX_PATHS];
	unsigned char pkind[MAX_PATHS];
	int npaths, all_mmaps;
} g = { PTHREAD_MUTEX_INITIALIZER, ST_NEW, -1, 0, 0, 0, 0, { 0 }, { 0 }, 0, 0 };
static unsigned char fd_kinds[FD_MAX];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

#define REAL(name) ({ \
	__typeof__(&name) f_ = __atomic_load_n(&real_##name, __ATOMIC_RELAXED); \
	if (!f_) { \
		f_ = (__typeof__(&name))dlsym(RTLD_NEXT, #name); \
		__atomic_store_n(&real_##name, f_, __ATOMIC_RELAXED); \
	} \
	f_; })
#define DECL_REAL(name) static __typeof__(&name) real_##name

static void warn_once(int *flag, const char *fmt, ...)
{
	char b[512];
	va_list ap;
	if (__atomic_exchange_n(flag, 1, __ATOMIC_RELAXED))
		return;
	int n = snprintf(b, sizeof(b), "iotrail record: ");
	va_start(ap, fmt);
	n += vsnprintf(b + n, sizeof(b) - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(b) - 2)
		n = sizeof(b) - 2;
	b[n++] = '\n';
	(void)syscall(SYS_write, 2, b, n); /* stderr may be closed; there is nowhere else to say it */
}
static int w_oom, w_out, w_fdmax, w_lost;

static int fd_kind(int fd) { return fd >= 0 && fd < FD_MAX ? __atomic_load_n(&fd_kinds[fd], __ATOMIC_RELAXED) : 0; }

static void track_fd(int fd, int kind)
{
	if (fd >= 0 && fd < FD_MAX)
		__atomic_store_n(&fd_kinds[fd], (unsigned char)kind, __ATOMIC_RELAXED);
	else if (fd >= FD_MAX)
		warn_once(&w_fdmax, "fd %d is beyond the recorder's table; calls on it are not recorded", fd);
}

static const char *const kind_names[] = { "", "iommufd", "vfio-group", "vfio-device" };

/* Kind of a path by its shape: /dev/vfio/vfio is the container, files in /dev/vfio/devices/ cdevs,
 * anything else under a vfio/ directory a group; everything else defaults to iommufd. */
static int kind_by_name(const char *path)
{
	const char *v = NULL;
	for (const char *p = strstr(path, "/vfio/"); p; p = strstr(p + 1, "/vfio/"))
		v = p + 6;
	if (!v)
		return K_IOMMU;
	if (!strcmp(v, "vfio"))
		return K_IOMMU;
	return strncmp(v, "devices/", 8) ? K_GROUP : K_DEVICE;
}

static int path_kind(const char *path, int *extra)
{
	*extra = 0;
	if (!strcmp(path, "/dev/iommu"))
		return K_IOMMU;
	if (!strncmp(path, "/dev/vfio/", 10) && path[10])
		return kind_by_name(path);
	for (int i = 0; i < g.npaths; i++) {
		size_t n = strlen(g.paths[i]);
		int prefix = n && g.paths[i][n - 1] == '/';
		if (prefix ? (!strncmp(path, g.paths[i], n) && path[n]) : !strcmp(path, g.paths[i])) {
			*extra = 1;
			return g.pkind[i] ? g.pkind[i] : kind_by_name(path);
		}
	}
	return K_NONE;
}

static void parse_paths(const char *env)
{
	static const char *const names[] = { "", "iommufd", "vfio-group", "vfio-device", "vfio-container" };
	static const unsigned char kinds[] = { 0, K_IOMMU, K_GROUP, K_DEVICE, K_IOMMU };
	char *s = env ? strdup(env) : NULL, *save = NULL;
	for (char *t = s ? strtok_r(s, ":", &save) : NULL; t && g.npaths < MAX_PATHS; t = strtok_r(NULL, ":", &save)) {
		char *eq = strrchr(t, '=');
		unsigned char k = 0;
		if (eq) {
			for (unsigned i = 1; i < sizeof(kinds); i++)
				if (!strcmp(eq + 1, names[i]))
					k = kinds[i];
			if (k)
				*eq = 0;
		}
		g.pkind[g.npaths] = k;
		g.paths[g.npaths++] = t;
	}
}

static void before_fork(void) { pthread_mutex_lock(&g.mu); }
static void after_fork(void) { pthread_mutex_unlock(&g.mu); }

static void init(void)
{
	/* strdup may be the first malloc, and allocators such as jemalloc open files while they
	 * initialise: those opens must pass straight through instead of re-entering pthread_once. */
	in_rec = 1;
	g.out = getenv("IOTRAIL_RECORD_OUT");
	g.source = getenv("IOTRAIL_RECORD_SOURCE");
	const char *all = getenv("IOTRAIL_RECORD_ALL_MMAPS");
	g.all_mmaps = all && *all && strcmp(all, "0");
	parse_paths(getenv("IOTRAIL_RECORD_PATHS"));
	/* A forked child keeps recording into the same trace (it shares the parent's open
	 * iommufd/VFIO files); the lock must not be inherited held. */
	pthread_atfork(before_fork, after_fork, after_fork);
	in_rec = 0;
}

__attribute__((constructor)) static void ctor(void) { pthread_once(&init_once, init); }

static int active(void)
{
	if (in_rec)
		return 0;
	pthread_once(&init_once, init);
	return __atomic_load_n(&g.state, __ATOMIC_RELAXED) != ST_OFF;
}

/* ---------- trace file ---------- */

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		long w = syscall(SYS_write, fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			warn_once(&w_lost, "writing the trace failed: %s; events are being lost", strerror(errno));
			return;
		}
		p += w;
		n -= w;
	}
}

static void header(struct jbuf *j)
{
	struct rlimit rl;
	unsigned long long cap = 0;
	char st[8192], *c; /* a long Groups: line can push CapEff past 4 KiB */
	int fd = syscall(SYS_openat, AT_FDCWD, "/proc/self/status", O_RDONLY | O_CLOEXEC);
	long n = fd >= 0 ? syscall(SYS_read, fd, st, sizeof(st) - 1) : -1;
	if (fd >= 0)
		syscall(SYS_close, fd);
	st[n > 0 ? n : 0] = 0;
	if ((c = strstr(st, "CapEff:")))
		cap = strtoull(c + 7, NULL, 16);
	jb_open(j, '{');
	jb_key(j, "iotrail"); jb_i64(j, 1);
	jb_key(j, "page_size"); jb_i64(j, sysconf(_SC_PAGESIZE));
	jb_key(j, "memory"); jb_str(j, "implicit");
	jb_key(j, "limits");
	jb_open(j, '{');
	jb_key(j, "memlock");
	if (getrlimit(RLIMIT_MEMLOCK, &rl) || rl.rlim_cur == RLIM_INFINITY)
		jb_str(j, "unlimited");
	else
		jb_u64(j, rl.rlim_cur);
	jb_key(j, "cap_sys_resource"); jb_bool(j, (cap >> 24) & 1);
	jb_key(j, "cap_ipc_lock"); jb_bool(j, (cap >> 14) & 1);
	jb_close(j, '}');
	jb_key(j, "source");
	if (g.source) {
		char *s = malloc(strlen(g.source) + 20);
		if (s) {
			sprintf(s, "iotrail record: %s", g.source);
			jb_str(j, s);
		}
		free(s);
	} else {
		/* argv as one line: /proc/self/cmdline separates the words with NULs */
		char cl[2048] = "iotrail record:";
		size_t at = strlen(cl);
		fd = syscall(SYS_openat, AT_FDCWD, "/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
		n = fd >= 0 ? syscall(SYS_read, fd, cl + at + 1, sizeof(cl) - at - 2) : -1;
		if (fd >= 0)
			syscall(SYS_close, fd);
		for (long i = 0; i < n; i++)
			cl[at + 1 + i] = cl[at + 1 + i] ? cl[at + 1 + i] : ' ';
		cl[at] = ' ';
		jb_strn(j, cl, at + (n > 0 ? (size_t)n : 0));
	}
	jb_close(j, '}');
	jb_raw(j, "\n", 1);
}

/* Keeps the recorder's fds out of the low numbers the program expects to get from open(). */
static int move_high(int fd)
{
	struct rlimit rl;
	long lim = getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur > 1024 ? 1024 : (long)rl.rlim_cur;
	if (fd < 0 || lim < 64)
		return fd;
	int hi = fcntl(fd, F_DUPFD_CLOEXEC, lim - 16);
	if (hi < 0)
		return fd;
	syscall(SYS_close, fd);
	return hi;
}

/* Called with g.mu held. The trace is claimed lazily, at the first event, so that wrapper
 * processes (a shell that execs the real program) never create it. */
static int writer_ready(void)
{
	struct stat sb;
	if (g.state == ST_OFF)
		return 0;
	if (g.state == ST_WRITING) {
		if (!fstat(g.fd, &sb) && sb.st_dev == g.dev && sb.st_ino == g.ino)
			return 1;
		/* the program closed or replaced our fd (daemons close everything) */
		int fd = syscall(SYS_openat, AT_FDCWD, g.out, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &sb) || sb.st_dev != g.dev || sb.st_ino != g.ino) {
			if (fd >= 0)
				syscall(SYS_close, fd);
			warn_once(&w_lost, "lost the trace file %s; recording stops", g.out);
			g.state = ST_OFF;
			return 0;
		}
		g.fd = move_high(fd);
		return 1;
	}
	if (!g.out || !*g.out) {
		warn_once(&w_out, "IOTRAIL_RECORD_OUT is not set; pid %d is not recorded", getpid());
		g.state = ST_OFF;
		return 0;
	}
	int fd = syscall(SYS_openat, AT_FDCWD, g.out, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		if (errno == EEXIST)
			warn_once(&w_out, "%s already exists (another process of this command is being recorded "
				  "into it); pid %d is not recorded", g.out, getpid());
		else
			warn_once(&w_out, "cannot create trace file %s: %s; not recording", g.out, strerror(errno));
		g.state = ST_OFF;
		return 0;
	}
	g.fd = move_high(fd);
	fstat(g.fd, &sb);
	g.dev = sb.st_dev;
	g.ino = sb.st_ino;
	struct jbuf h = { 0 };
	header(&h);
	if (h.oom) {
		warn_once(&w_oom, "out of memory; not recording");
		g.state = ST_OFF;
		jb_free(&h);
		return 0;
	}
	write_all(g.fd, h.p, h.n);
	jb_free(&h);
	g.state = ST_WRITING;
	return 1;
}

/* ---------- events ---------- */

static void ev_begin(struct jbuf *j, const char *op)
{
	jb_open(j, '{');
	jb_key(j, "op"); jb_str(j, op);
	jb_key(j, "tid"); jb_i64(j, syscall(SYS_gettid));
}

static void ev_result(struct jbuf *j, long ret, int err)
{
	if (ret == -1) {
		jb_key(j, "errno");
		jb_errno(j, err);
	} else {
		jb_key(j, "ret");
		jb_i64(j, ret);
	}
}

/* One write() per line: concurrent threads (and forked children) append whole lines. */
static void ev_end(struct jbuf *j, const char *note)
{
	if (note && *note) {
		jb_key(j, "note");
		jb_str(j, note);
	}
	jb_close(j, '}');
	jb_raw(j, "\n", 1);
	if (j->oom) {
		warn_once(&w_oom, "out of memory; some events were not recorded");
	} else {
		pthread_mutex_lock(&g.mu);
		if (writer_ready())
			write_all(g.fd, j->p, j->n);
		pthread_mutex_unlock(&g.mu);
	}
	jb_free(j);
}

#include "wrappers.h"
