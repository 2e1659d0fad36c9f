// SPDX-License-Identifier: GPL-2.0-only
/*
 * fake_vmm: issues the calls a VMM makes to iommufd and VFIO, with the real uapi layouts,
 * on files that are not IOMMU devices (this machine has no /dev/iommu; the recorder is told
 * to treat the files as such via IOTRAIL_RECORD_PATHS). The kernel answers ENOTTY.
 *
 *   fake_vmm IOMMU_PATH DEVICE_PATH [GROUP_PATH]
 *
 * stdout: one deterministic line per call ("NAME ret=R errno=E"), so a recorded and an
 * unrecorded run can be compared byte for byte. stderr: "fact NAME=VALUE" lines for values
 * that change between runs (addresses, fds), for checking the trace. Exit code 42.
 *
 * Built with -DFAKE_KERNEL -shared -fPIC, the same file is a library that defines ioctl()
 * and answers the iommufd calls on FAKE_KERNEL_IOMMU / FAKE_KERNEL_DEVICE / FAKE_KERNEL_GROUP
 * like a kernel would, so that output fields, returned fds and EMSGSIZE can be exercised as well.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define IOMMU_DESTROY 0x3b80
#define IOMMU_IOAS_ALLOC 0x3b81
#define IOMMU_IOAS_ALLOW_IOVAS 0x3b82
#define IOMMU_IOAS_IOVA_RANGES 0x3b84
#define IOMMU_IOAS_MAP 0x3b85
#define IOMMU_IOAS_UNMAP 0x3b86
#define IOMMU_GET_HW_INFO 0x3b8a
#define IOMMU_FAULT_QUEUE_ALLOC 0x3b8e
#define IOMMU_TEST_CMD 0x3ba0
#define VFIO_CHECK_EXTENSION 0x3b65
#define VFIO_GROUP_GET_STATUS 0x3b67
#define VFIO_GROUP_SET_CONTAINER 0x3b68
#define VFIO_GROUP_GET_DEVICE_FD 0x3b6a
#define VFIO_DEVICE_GET_REGION_INFO 0x3b6c
#define VFIO_IOMMU_MAP_DMA 0x3b71
#define VFIO_DEVICE_BIND_IOMMUFD 0x3b76

struct iommu_iova_range { uint64_t start, last; };
struct iommu_destroy { uint32_t size, id; };
struct iommu_ioas_alloc { uint32_t size, flags, out_ioas_id; };
struct iommu_ioas_allow_iovas { uint32_t size, ioas_id, num_iovas, reserved_; uint64_t allowed_iovas; };
struct iommu_ioas_iova_ranges {
	uint32_t size, ioas_id, num_iovas, reserved_;
	uint64_t allowed_iovas, out_iova_alignment;
};
struct iommu_ioas_map { uint32_t size, flags, ioas_id, reserved_; uint64_t user_va, length, iova; };
struct iommu_ioas_unmap { uint32_t size, ioas_id; uint64_t iova, length; };
struct iommu_hw_info {
	uint32_t size, flags, dev_id, data_len;
	uint64_t data_uptr;
	uint32_t out_data_type;
	uint8_t out_max_pasid_log2, reserved_[3];
	uint64_t out_capabilities;
};
struct iommu_fault_alloc { uint32_t size, flags, out_fault_id, out_fault_fd; };
struct iommu_test_cmd {
	uint32_t size, op, id, reserved_;
	union {
		struct { uint64_t start, length; } add_reserved;
		uint64_t raw[6];
	};
	uint32_t last;
};
struct vfio_group_status { uint32_t argsz, flags; };
struct vfio_region_info { uint32_t argsz, flags, index, cap_offset; uint64_t size, offset; };
struct vfio_iommu_type1_dma_map { uint32_t argsz, flags; uint64_t vaddr, iova, size; };
struct vfio_device_bind_iommufd { uint32_t argsz, flags; int32_t iommufd; uint32_t out_devid; uint64_t token_uuid_ptr; };

_Static_assert(sizeof(struct iommu_ioas_iova_ranges) == 32, "uapi layout");
_Static_assert(sizeof(struct iommu_ioas_map) == 40, "uapi layout");
_Static_assert(sizeof(struct iommu_hw_info) == 40, "uapi layout");
_Static_assert(sizeof(struct iommu_test_cmd) == 72, "uapi layout");
_Static_assert(sizeof(struct vfio_device_bind_iommufd) == 24, "uapi layout");
_Static_assert(sizeof(struct vfio_region_info) == 32, "uapi layout");

#ifdef FAKE_KERNEL
/* ---------------- the fake kernel ---------------- */

static int fd_is(int fd, const char *want)
{
	char link[64], target[4096];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (!want || n <= 0)
		return 0;
	target[n] = 0;
	return !strcmp(target, want);
}

static int is_path(int fd, const char *env) { return fd_is(fd, getenv(env)); }

static int fail(int e) { errno = e; return -1; }

int ioctl(int fd, unsigned long req, ...)
{
	static uint32_t next_id = 1;
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (is_path(fd, "FAKE_KERNEL_DEVICE") && req == VFIO_DEVICE_BIND_IOMMUFD) {
		((struct vfio_device_bind_iommufd *)arg)->out_devid = next_id++;
		return 0;
	}
	if (is_path(fd, "FAKE_KERNEL_GROUP")) {
		switch (req) {
		case VFIO_GROUP_GET_STATUS:
			((struct vfio_group_status *)arg)->flags = 1;
			return 0;
		case VFIO_GROUP_SET_CONTAINER:
			return 0;
		case VFIO_GROUP_GET_DEVICE_FD:
			return open("/dev/zero", O_RDWR | O_CLOEXEC);
		}
	}
	/* the device fd handed out by VFIO_GROUP_GET_DEVICE_FD above */
	if (fd_is(fd, "/dev/zero") && req == VFIO_DEVICE_GET_REGION_INFO) {
		struct vfio_region_info *ri = arg;
		ri->flags = 3;
		ri->size = 256;
		ri->offset = (uint64_t)ri->index << 40;
		return 0;
	}
	if (!is_path(fd, "FAKE_KERNEL_IOMMU")) {
		int (*real)(int, unsigned long, ...) = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
		return real(fd, req, arg);
	}
	if (!arg && req != VFIO_CHECK_EXTENSION)
		return fail(EFAULT);
	switch (req) {
	case IOMMU_IOAS_ALLOC:
		((struct iommu_ioas_alloc *)arg)->out_ioas_id = next_id++;
		return 0;
	case IOMMU_IOAS_IOVA_RANGES: {
		struct iommu_ioas_iova_ranges *r = arg;
		struct iommu_iova_range *out = (void *)(uintptr_t)r->allowed_iovas;
		uint32_t room = r->num_iovas;
		r->num_iovas = 2;
		if (room < 2)
			return fail(EMSGSIZE);
		out[0] = (struct iommu_iova_range){ 0, 0xfedfffff };
		out[1] = (struct iommu_iova_range){ 0xfef00000, UINT64_MAX };
		r->out_iova_alignment = 4096;
		return 0;
	}
	case IOMMU_IOAS_MAP: {
		struct iommu_ioas_map *m = arg;
		if (!(m->flags & 1))
			m->iova = 0x200000;
		return 0;
	}
	case IOMMU_GET_HW_INFO: {
		struct iommu_hw_info *h = arg;
		uint32_t data[2] = { 0, 0xdeadbeef };
		memset((void *)(uintptr_t)h->data_uptr, 0, h->data_len);
		memcpy((void *)(uintptr_t)h->data_uptr, data, h->data_len < 8 ? h->data_len : 8);
		h->data_len = 8;
		h->out_data_type = 0xfeedbeef;
		h->out_capabilities = 1;
		return 0;
	}
	case IOMMU_FAULT_QUEUE_ALLOC: {
		struct iommu_fault_alloc *f = arg;
		f->out_fault_id = next_id++;
		f->out_fault_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		return 0;
	}
	case VFIO_CHECK_EXTENSION:
		return 1;
	case IOMMU_DESTROY:
	case IOMMU_IOAS_ALLOW_IOVAS:
	case IOMMU_IOAS_UNMAP:
	case IOMMU_TEST_CMD:
	case VFIO_IOMMU_MAP_DMA:
		return 0;
	default:
		return fail(ENOTTY);
	}
}

#else
/* ---------------- the program ---------------- */

static int call(const char *name, int fd, unsigned long cmd, void *arg)
{
	int ret = ioctl(fd, cmd, arg);
	printf("%s ret=%d errno=%d\n", name, ret, ret < 0 ? errno : 0);
	return ret;
}

static int iommufd;

static void *destroyer(void *p)
{
	for (uint32_t i = 0; i < 25; i++) {
		struct iommu_destroy d = { sizeof(d), 1000 + (uint32_t)(uintptr_t)p * 100 + i };
		ioctl(iommufd, IOMMU_DESTROY, &d);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: fake_vmm IOMMU_PATH DEVICE_PATH [GROUP_PATH]\n");
		return 2;
	}
	int memfd = memfd_create("guest-ram", MFD_CLOEXEC);
	printf("memfd_create ok=%d\n", memfd >= 0);
	printf("ftruncate ret=%d\n", ftruncate(memfd, 65536));
	char *ram = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	char *anon = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("mmap ok=%d\n", ram != MAP_FAILED && anon != MAP_FAILED);
	iommufd = open(argv[1], O_RDWR | O_CLOEXEC);
	printf("open ok=%d\n", iommufd >= 0);
	fprintf(stderr, "fact memfd=%d\nfact ram=%p\nfact anon=%p\nfact iommufd=%d\n", memfd, (void *)ram,
		(void *)anon, iommufd);

	struct iommu_ioas_alloc alloc = { sizeof(alloc), 0, 0 };
	uint32_t ioas = call("IOMMU_IOAS_ALLOC", iommufd, IOMMU_IOAS_ALLOC, &alloc) == 0 ? alloc.out_ioas_id : 7;
	printf("ioas=%u\n", ioas);

	struct iommu_iova_range allow[2] = { { 0x1000, 0xfffff }, { 0x1000000, UINT64_MAX } };
	struct iommu_ioas_allow_iovas aw = { sizeof(aw), ioas, 2, 0, (uintptr_t)allow };
	call("IOMMU_IOAS_ALLOW_IOVAS", iommufd, IOMMU_IOAS_ALLOW_IOVAS, &aw);

	struct iommu_ioas_iova_ranges probe = { sizeof(probe), ioas, 0, 0, 0, 0 };
	call("IOMMU_IOAS_IOVA_RANGES", iommufd, IOMMU_IOAS_IOVA_RANGES, &probe);
	struct iommu_iova_range got[2] = { { 0, 0 }, { 0, 0 } };
	struct iommu_ioas_iova_ranges ranges = { sizeof(ranges), ioas, 2, 0, (uintptr_t)got, 0 };
	call("IOMMU_IOAS_IOVA_RANGES", iommufd, IOMMU_IOAS_IOVA_RANGES, &ranges);

	struct iommu_ioas_map map = { sizeof(map), 7, ioas, 0, (uintptr_t)ram, 65536, 0x1000000 };
	call("IOMMU_IOAS_MAP", iommufd, IOMMU_IOAS_MAP, &map);
	struct iommu_ioas_map amap = { sizeof(amap), 6, ioas, 0, (uintptr_t)anon, 8192, 0 };
	call("IOMMU_IOAS_MAP", iommufd, IOMMU_IOAS_MAP, &amap);
	printf("auto iova=0x%llx\n", (unsigned long long)amap.iova);

	struct vfio_iommu_type1_dma_map dma = { sizeof(dma), 3, (uintptr_t)ram, 0x2000000, 4096 };
	call("VFIO_IOMMU_MAP_DMA", iommufd, VFIO_IOMMU_MAP_DMA, &dma);
	call("VFIO_CHECK_EXTENSION", iommufd, VFIO_CHECK_EXTENSION, (void *)3UL);
	call("unknown", iommufd, 0x3bfe, ram);

	struct iommu_test_cmd tc = { .size = sizeof(tc), .op = 1, .id = ioas };
	tc.add_reserved.start = 0x40000000;
	tc.add_reserved.length = 0x1000;
	call("IOMMU_TEST_CMD", iommufd, IOMMU_TEST_CMD, &tc);
	call("IOMMU_IOAS_ALLOC(NULL)", iommufd, IOMMU_IOAS_ALLOC, NULL);

	unsigned char hw[16];
	memset(hw, 0xaa, sizeof(hw));
	struct iommu_hw_info info = { .size = sizeof(info), .dev_id = 1, .data_len = 16, .data_uptr = (uintptr_t)hw };
	call("IOMMU_GET_HW_INFO", iommufd, IOMMU_GET_HW_INFO, &info);

	struct iommu_fault_alloc fa = { sizeof(fa), 0, 0, 0 };
	if (call("IOMMU_FAULT_QUEUE_ALLOC", iommufd, IOMMU_FAULT_QUEUE_ALLOC, &fa) == 0) {
		unsigned char rec[40];
		unsigned char resp[8] = { 1, 0, 0, 0, 0, 0, 0, 0 };
		fprintf(stderr, "fact fault_fd=%d\n", (int)fa.out_fault_fd);
		printf("fault read=%zd\n", read(fa.out_fault_fd, rec, sizeof(rec)));
		printf("fault write=%zd\n", write(fa.out_fault_fd, resp, sizeof(resp)));
		printf("fault close=%d\n", close(fa.out_fault_fd));
	}

	printf("madvise ret=%d\n", madvise(ram, 4096, MADV_DONTNEED));
	struct iommu_ioas_unmap unmap = { sizeof(unmap), ioas, 0x1000000, 65536 };
	call("IOMMU_IOAS_UNMAP", iommufd, IOMMU_IOAS_UNMAP, &unmap);

	int dev = open(argv[2], O_RDWR | O_CLOEXEC);
	fprintf(stderr, "fact devfd=%d\n", dev);
	struct vfio_device_bind_iommufd bind = { sizeof(bind), 0, iommufd, 0, 0 };
	call("VFIO_DEVICE_BIND_IOMMUFD", dev, VFIO_DEVICE_BIND_IOMMUFD, &bind);
	unsigned char cfg[4] = { 0, 0, 0, 0 };
	printf("pread ret=%zd\n", pread(dev, cfg, sizeof(cfg), 0));
	printf("pwrite ret=%zd\n", pwrite(dev, "\x06\x04", 2, 4));
	printf("close dev=%d\n", close(dev));

	if (argc == 4) {
		int group = open(argv[3], O_RDWR | O_CLOEXEC);
		struct vfio_group_status gs = { sizeof(gs), 0 };
		fprintf(stderr, "fact groupfd=%d\n", group);
		call("VFIO_GROUP_GET_STATUS", group, VFIO_GROUP_GET_STATUS, &gs);
		printf("group flags=%u\n", gs.flags);
		call("VFIO_GROUP_SET_CONTAINER", group, VFIO_GROUP_SET_CONTAINER, &iommufd);
		int gdev = call("VFIO_GROUP_GET_DEVICE_FD", group, VFIO_GROUP_GET_DEVICE_FD, "0000:01:00.0");
		if (gdev >= 0) {
			struct vfio_region_info ri = { .argsz = sizeof(ri), .index = 7 };
			fprintf(stderr, "fact gdevfd=%d\n", gdev);
			call("VFIO_DEVICE_GET_REGION_INFO", gdev, VFIO_DEVICE_GET_REGION_INFO, &ri);
			printf("region offset=0x%llx\n", (unsigned long long)ri.offset);
			printf("close gdev=%d\n", close(gdev));
		}
		printf("close group=%d\n", close(group));
	}

	pthread_t t[4];
	for (uintptr_t i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, destroyer, (void *)i);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	printf("threads done\n");

	struct iommu_destroy d = { sizeof(d), ioas };
	call("IOMMU_DESTROY", iommufd, IOMMU_DESTROY, &d);
	printf("munmap ram=%d\n", munmap(ram, 65536));
	printf("munmap anon=%d\n", munmap(anon, 8192));
	printf("close iommufd=%d\n", close(iommufd));
	printf("close memfd=%d\n", close(memfd));
	return 42;
}
#endif
