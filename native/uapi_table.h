/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Command numbers and struct layouts of the iommufd and VFIO ioctls, as data.
 *
 * The layouts are written out here (offsets from include/uapi/linux/iommufd.h, vfio.h and
 * drivers/iommu/iommufd/iommufd_test.h, as restated in /work/shared/spec) instead of
 * including the kernel headers, because the recorder must build on machines whose headers
 * predate iommufd, and must decode structs newer than those headers.
 */
#ifndef IOTRAIL_UAPI_TABLE_H
#define IOTRAIL_UAPI_TABLE_H

#include <stdint.h>

/* What an fd is, decided when it is opened or returned; the same ioctl number means
 * different commands on different kinds of fd (VFIO container vs device). */
enum fd_kind {
	K_NONE = 0,
	K_IOMMU = 1,   /* /dev/iommu, or /dev/vfio/vfio (iommufd compat or legacy container) */
	K_GROUP = 2,   /* /dev/vfio/<group> */
	K_DEVICE = 3,  /* VFIO device cdev, or an fd from VFIO_GROUP_GET_DEVICE_FD */
	K_FAULT = 4,   /* IOMMU_FAULT_QUEUE_ALLOC out_fault_fd */
	K_VEVENTQ = 5, /* IOMMU_VEVENTQ_ALLOC out_veventq_fd */
	K_MEMFD = 6,
	K_OTHER = 7,   /* selftest access fds, dma-bufs: only their close and mmap matter */
};
#define KM(k) (1u << (k))

enum ftype {
	T_U8 = 1, T_U16, T_U32, T_S32, T_U64,
	T_RES3,    /* __u8 __reserved[3]: hex bytes, written only when non-zero */
	T_RANGES,  /* user pointer to struct iommu_iova_range[cnt] */
	T_BLOB,    /* user pointer to cnt bytes */
	T_BLOBMUL, /* user pointer to cnt * cnt2 bytes */
	T_BITMAP,  /* user pointer to a dirty bitmap of cnt / cnt2 bits, in u64 words */
	T_FIX16,   /* user pointer to 16 bytes (a UUID) */
	T_TESTOP,  /* IOMMU_TEST_OP_* enum */
};
enum fdir { IN = 1, OUT = 2, IO = 3 };

struct fdesc {
	const char *name;
	uint16_t off;
	uint8_t type, dir;
	int8_t cnt, cnt2;  /* indexes of the fields holding a pointer's element count */
	uint8_t fdk;       /* an output fd of this kind, to be followed */
	uint8_t nested;    /* lives in the IOMMU_TEST_CMD union member */
	uint8_t omit0;     /* padding-like: written only when non-zero */
};

#define SD_OUT_TAIL 1 /* the kernel writes a capability chain or array after the struct */
/* iotrail's replay treats the command as opaque and rejects "out" for it, so the observed
 * outputs go into the event's note instead (VFIO device info/IRQ/reset/feature ioctls). */
#define SD_OUT_NOTE 2

struct sdesc {
	const char *member; /* IOMMU_TEST_CMD union member name */
	uint16_t size;      /* full struct size, the default of size/argsz */
	uint8_t nfields, flags;
	const struct fdesc *f;
};

enum argtype { A_NONE, A_INT, A_PINT, A_STR, A_STRUCT, A_TEST };

/* A command iotrail's trace reader has no name for yet: written as its number, named in the note. */
#define CF_NUMERIC 0x80

struct cdesc {
	uint32_t cmd;
	uint8_t kinds, argt, retfd; /* argt may carry CF_NUMERIC */
	const char *name;
	const struct sdesc *s;
};

#define F(n, o, t, d) { n, o, t, d, -1, -1, 0, 0, 0 }
#define FZ(n, o, t, d) { n, o, t, d, -1, -1, 0, 0, 1 }
#define FC(n, o, t, d, c, c2) { n, o, t, d, c, c2, 0, 0, 0 }
#define FD(n, o, k) { n, o, T_S32, OUT, -1, -1, k, 0, 0 }
#define NF(n, o, t, d) { n, o, t, d, -1, -1, 0, 1, 0 }
#define NFD(n, o, k) { n, o, T_S32, OUT, -1, -1, k, 1, 0 }
#define NEL(a) ((uint8_t)(sizeof(a) / sizeof((a)[0])))
#define SD(a, sz, fl) { 0, sz, NEL(a), fl, a }
#define SZ F("size", 0, T_U32, IN)
#define AZ F("argsz", 0, T_U32, IN)

/* ---- iommufd (iommufd-core-spec §3, iommufd-device-spec §2.6, §3.1) ---- */
static const struct fdesc f_destroy[] = { SZ, F("id", 4, T_U32, IN) };
static const struct fdesc f_ioas_alloc[] = { SZ, F("flags", 4, T_U32, IN), F("out_ioas_id", 8, T_U32, OUT) };
static const struct fdesc f_allow_iovas[] = {
	SZ, F("ioas_id", 4, T_U32, IN), F("num_iovas", 8, T_U32, IN), F("__reserved", 12, T_U32, IN),
	FC("allowed_iovas", 16, T_RANGES, IN, 2, -1) };
static const struct fdesc f_ioas_copy[] = {
	SZ, F("flags", 4, T_U32, IN), F("dst_ioas_id", 8, T_U32, IN), F("src_ioas_id", 12, T_U32, IN),
	F("length", 16, T_U64, IN), F("dst_iova", 24, T_U64, IO), F("src_iova", 32, T_U64, IN) };
static const struct fdesc f_iova_ranges[] = {
	SZ, F("ioas_id", 4, T_U32, IN), F("num_iovas", 8, T_U32, IO), F("__reserved", 12, T_U32, IN),
	FC("allowed_iovas", 16, T_RANGES, OUT, 2, -1), F("out_iova_alignment", 24, T_U64, OUT) };
static const struct fdesc f_ioas_map[] = {
	SZ, F("flags", 4, T_U32, IN), F("ioas_id", 8, T_U32, IN), F("__reserved", 12, T_U32, IN),
	F("user_va", 16, T_U64, IN), F("length", 24, T_U64, IN), F("iova", 32, T_U64, IO) };
static const struct fdesc f_ioas_unmap[] = {
	SZ, F("ioas_id", 4, T_U32, IN), F("iova", 8, T_U64, IN), F("length", 16, T_U64, IO) };
static const struct fdesc f_option[] = {
	SZ, F("option_id", 4, T_U32, IN), F("op", 8, T_U16, IN), F("__reserved", 10, T_U16, IN),
	F("object_id", 12, T_U32, IN), F("val64", 16, T_U64, IO) };
static const struct fdesc f_vfio_ioas[] = {
	SZ, F("ioas_id", 4, T_U32, IO), F("op", 8, T_U16, IN), F("__reserved", 10, T_U16, IN) };
static const struct fdesc f_hwpt_alloc[] = {
	SZ, F("flags", 4, T_U32, IN), F("dev_id", 8, T_U32, IN), F("pt_id", 12, T_U32, IN),
	F("out_hwpt_id", 16, T_U32, OUT), F("__reserved", 20, T_U32, IN), F("data_type", 24, T_U32, IN),
	F("data_len", 28, T_U32, IN), FC("data_uptr", 32, T_BLOB, IN, 7, -1), F("fault_id", 40, T_U32, IN),
	F("__reserved2", 44, T_U32, IN) };
static const struct fdesc f_hw_info[] = {
	SZ, F("flags", 4, T_U32, IN), F("dev_id", 8, T_U32, IN), F("data_len", 12, T_U32, IO),
	FC("data_uptr", 16, T_BLOB, OUT, 3, -1), F("in_data_type", 24, T_U32, IN),
	F("out_data_type", 24, T_U32, OUT), F("out_max_pasid_log2", 28, T_U8, OUT),
	F("__reserved", 29, T_RES3, IN), F("out_capabilities", 32, T_U64, OUT) };
static const struct fdesc f_set_dirty[] = {
	SZ, F("flags", 4, T_U32, IN), F("hwpt_id", 8, T_U32, IN), F("__reserved", 12, T_U32, IN) };
static const struct fdesc f_dirty_bitmap[] = {
	SZ, F("hwpt_id", 4, T_U32, IN), F("flags", 8, T_U32, IN), F("__reserved", 12, T_U32, IN),
	F("iova", 16, T_U64, IN), F("length", 24, T_U64, IN), F("page_size", 32, T_U64, IN),
	FC("data", 40, T_BITMAP, OUT, 5, 6) };
static const struct fdesc f_invalidate[] = {
	SZ, F("hwpt_id", 4, T_U32, IN), FC("data_uptr", 8, T_BLOBMUL, IN, 4, 5), F("data_type", 16, T_U32, IN),
	F("entry_len", 20, T_U32, IN), F("entry_num", 24, T_U32, IO), F("__reserved", 28, T_U32, IN) };
static const struct fdesc f_fault_alloc[] = {
	SZ, F("flags", 4, T_U32, IN), F("out_fault_id", 8, T_U32, OUT), FD("out_fault_fd", 12, K_FAULT) };
static const struct fdesc f_map_file[] = {
	SZ, F("flags", 4, T_U32, IN), F("ioas_id", 8, T_U32, IN), F("fd", 12, T_S32, IN),
	F("start", 16, T_U64, IN), F("length", 24, T_U64, IN), F("iova", 32, T_U64, IO) };
static const struct fdesc f_viommu_alloc[] = {
	SZ, F("flags", 4, T_U32, IN), F("type", 8, T_U32, IN), F("dev_id", 12, T_U32, IN),
	F("hwpt_id", 16, T_U32, IN), F("out_viommu_id", 20, T_U32, OUT), F("data_len", 24, T_U32, IN),
	F("__reserved", 28, T_U32, IN), FC("data_uptr", 32, T_BLOB, IO, 6, -1) };
static const struct fdesc f_vdevice_alloc[] = {
	SZ, F("viommu_id", 4, T_U32, IN), F("dev_id", 8, T_U32, IN), F("out_vdevice_id", 12, T_U32, OUT),
	F("virt_id", 16, T_U64, IN) };
static const struct fdesc f_change_process[] = { SZ, F("__reserved", 4, T_U32, IN) };
static const struct fdesc f_veventq_alloc[] = {
	SZ, F("flags", 4, T_U32, IN), F("viommu_id", 8, T_U32, IN), F("type", 12, T_U32, IN),
	F("veventq_depth", 16, T_U32, IN), F("out_veventq_id", 20, T_U32, OUT),
	FD("out_veventq_fd", 24, K_VEVENTQ), F("__reserved", 28, T_U32, IN) };
static const struct fdesc f_hw_queue_alloc[] = {
	SZ, F("flags", 4, T_U32, IN), F("viommu_id", 8, T_U32, IN), F("type", 12, T_U32, IN),
	F("index", 16, T_U32, IN), F("out_hw_queue_id", 20, T_U32, OUT),
	F("nesting_parent_iova", 24, T_U64, IN), F("length", 32, T_U64, IN) };
static const struct fdesc f_noiommu_pa[] = {
	SZ, F("flags", 4, T_U32, IN), F("ioas_id", 8, T_U32, IN), F("__reserved", 12, T_U32, IN),
	F("iova", 16, T_U64, IN), F("length", 24, T_U64, IO), F("out_phys", 32, T_U64, OUT) };

static const struct sdesc s_destroy = SD(f_destroy, 8, 0);
static const struct sdesc s_ioas_alloc = SD(f_ioas_alloc, 12, 0);
static const struct sdesc s_allow_iovas = SD(f_allow_iovas, 24, 0);
static const struct sdesc s_ioas_copy = SD(f_ioas_copy, 40, 0);
static const struct sdesc s_iova_ranges = SD(f_iova_ranges, 32, 0);
static const struct sdesc s_ioas_map = SD(f_ioas_map, 40, 0);
static const struct sdesc s_ioas_unmap = SD(f_ioas_unmap, 24, 0);
static const struct sdesc s_option = SD(f_option, 24, 0);
static const struct sdesc s_vfio_ioas = SD(f_vfio_ioas, 12, 0);
static const struct sdesc s_hwpt_alloc = SD(f_hwpt_alloc, 48, 0);
static const struct sdesc s_hw_info = SD(f_hw_info, 40, 0);
static const struct sdesc s_set_dirty = SD(f_set_dirty, 16, 0);
static const struct sdesc s_dirty_bitmap = SD(f_dirty_bitmap, 48, 0);
static const struct sdesc s_invalidate = SD(f_invalidate, 32, 0);
static const struct sdesc s_fault_alloc = SD(f_fault_alloc, 16, 0);
static const struct sdesc s_map_file = SD(f_map_file, 40, 0);
static const struct sdesc s_viommu_alloc = SD(f_viommu_alloc, 40, 0);
static const struct sdesc s_vdevice_alloc = SD(f_vdevice_alloc, 24, 0);
static const struct sdesc s_change_process = SD(f_change_process, 8, 0);
static const struct sdesc s_veventq_alloc = SD(f_veventq_alloc, 32, 0);
static const struct sdesc s_hw_queue_alloc = SD(f_hw_queue_alloc, 40, 0);
static const struct sdesc s_noiommu_pa = SD(f_noiommu_pa, 40, 0);

/* ---- VFIO (vfio-type1-spec §1.1, §2.2, §5; iommufd-device-spec §2.7; vfio.h) ---- */
static const struct fdesc f_type1_info[] = {
	F("argsz", 0, T_U32, IO), F("flags", 4, T_U32, IO), F("iova_pgsizes", 8, T_U64, IO),
	F("cap_offset", 16, T_U32, IO), FZ("pad", 20, T_U32, IN) };
static const struct fdesc f_dma_map[] = {
	AZ, F("flags", 4, T_U32, IN), F("vaddr", 8, T_U64, IN), F("iova", 16, T_U64, IN), F("size", 24, T_U64, IN) };
static const struct fdesc f_dma_unmap[] = {
	AZ, F("flags", 4, T_U32, IN), F("iova", 8, T_U64, IN), F("size", 16, T_U64, IO) };
static const struct fdesc f_argsz_flags[] = { AZ, F("flags", 4, T_U32, IN) };
static const struct fdesc f_group_status[] = { AZ, F("flags", 4, T_U32, OUT) };
static const struct fdesc f_device_info[] = {
	F("argsz", 0, T_U32, IO), F("flags", 4, T_U32, OUT), F("num_regions", 8, T_U32, OUT),
	F("num_irqs", 12, T_U32, OUT), F("cap_offset", 16, T_U32, OUT), FZ("pad", 20, T_U32, IN) };
static const struct fdesc f_region_info[] = {
	F("argsz", 0, T_U32, IO), F("flags", 4, T_U32, OUT), F("index", 8, T_U32, IN),
	F("cap_offset", 12, T_U32, OUT), F("size", 16, T_U64, OUT), F("offset", 24, T_U64, OUT) };
static const struct fdesc f_irq_info[] = {
	AZ, F("flags", 4, T_U32, OUT), F("index", 8, T_U32, IN), F("count", 12, T_U32, OUT) };
static const struct fdesc f_irq_set[] = {
	AZ, F("flags", 4, T_U32, IN), F("index", 8, T_U32, IN), F("start", 12, T_U32, IN), F("count", 16, T_U32, IN) };
static const struct fdesc f_hot_reset_info[] = {
	F("argsz", 0, T_U32, IO), F("flags", 4, T_U32, IO), F("count", 8, T_U32, IO) };
static const struct fdesc f_hot_reset[] = { AZ, F("flags", 4, T_U32, IN), F("count", 8, T_U32, IN) };
static const struct fdesc f_bind[] = {
	AZ, F("flags", 4, T_U32, IN), F("iommufd", 8, T_S32, IN), F("out_devid", 12, T_U32, OUT),
	F("token_uuid_ptr", 16, T_FIX16, IN) };
static const struct fdesc f_attach[] = {
	AZ, F("flags", 4, T_U32, IN), F("pt_id", 8, T_U32, IO), F("pasid", 12, T_U32, IN) };
static const struct fdesc f_detach[] = { AZ, F("flags", 4, T_U32, IN), F("pasid", 8, T_U32, IN) };

static const struct sdesc s_type1_info = SD(f_type1_info, 24, SD_OUT_TAIL);
static const struct sdesc s_dma_map = SD(f_dma_map, 32, 0);
static const struct sdesc s_dma_unmap = SD(f_dma_unmap, 24, 0);
static const struct sdesc s_dirty_pages = SD(f_argsz_flags, 8, 0);
static const struct sdesc s_group_status = SD(f_group_status, 8, 0);
static const struct sdesc s_device_info = SD(f_device_info, 24, SD_OUT_TAIL | SD_OUT_NOTE);
static const struct sdesc s_region_info = SD(f_region_info, 32, SD_OUT_TAIL | SD_OUT_NOTE);
static const struct sdesc s_irq_info = SD(f_irq_info, 16, SD_OUT_NOTE);
static const struct sdesc s_irq_set = SD(f_irq_set, 20, SD_OUT_NOTE);
static const struct sdesc s_hot_reset_info = SD(f_hot_reset_info, 12, SD_OUT_TAIL | SD_OUT_NOTE);
static const struct sdesc s_hot_reset = SD(f_hot_reset, 12, SD_OUT_NOTE);
static const struct sdesc s_feature = SD(f_argsz_flags, 8, SD_OUT_TAIL | SD_OUT_NOTE);
static const struct sdesc s_bind = SD(f_bind, 24, 0);
static const struct sdesc s_attach = SD(f_attach, 16, 0);
static const struct sdesc s_detach = SD(f_detach, 12, 0);

#define KI KM(K_IOMMU)
static const struct cdesc cmd_table[] = {
	{ 0x3b80, KI, A_STRUCT, 0, "IOMMU_DESTROY", &s_destroy },
	{ 0x3b81, KI, A_STRUCT, 0, "IOMMU_IOAS_ALLOC", &s_ioas_alloc },
	{ 0x3b82, KI, A_STRUCT, 0, "IOMMU_IOAS_ALLOW_IOVAS", &s_allow_iovas },
	{ 0x3b83, KI, A_STRUCT, 0, "IOMMU_IOAS_COPY", &s_ioas_copy },
	{ 0x3b84, KI, A_STRUCT, 0, "IOMMU_IOAS_IOVA_RANGES", &s_iova_ranges },
	{ 0x3b85, KI, A_STRUCT, 0, "IOMMU_IOAS_MAP", &s_ioas_map },
	{ 0x3b86, KI, A_STRUCT, 0, "IOMMU_IOAS_UNMAP", &s_ioas_unmap },
	{ 0x3b87, KI, A_STRUCT, 0, "IOMMU_OPTION", &s_option },
	{ 0x3b88, KI, A_STRUCT, 0, "IOMMU_VFIO_IOAS", &s_vfio_ioas },
	{ 0x3b89, KI, A_STRUCT, 0, "IOMMU_HWPT_ALLOC", &s_hwpt_alloc },
	{ 0x3b8a, KI, A_STRUCT, 0, "IOMMU_GET_HW_INFO", &s_hw_info },
	{ 0x3b8b, KI, A_STRUCT, 0, "IOMMU_HWPT_SET_DIRTY_TRACKING", &s_set_dirty },
	{ 0x3b8c, KI, A_STRUCT, 0, "IOMMU_HWPT_GET_DIRTY_BITMAP", &s_dirty_bitmap },
	{ 0x3b8d, KI, A_STRUCT, 0, "IOMMU_HWPT_INVALIDATE", &s_invalidate },
	{ 0x3b8e, KI, A_STRUCT, 0, "IOMMU_FAULT_QUEUE_ALLOC", &s_fault_alloc },
	{ 0x3b8f, KI, A_STRUCT, 0, "IOMMU_IOAS_MAP_FILE", &s_map_file },
	{ 0x3b90, KI, A_STRUCT, 0, "IOMMU_VIOMMU_ALLOC", &s_viommu_alloc },
	{ 0x3b91, KI, A_STRUCT, 0, "IOMMU_VDEVICE_ALLOC", &s_vdevice_alloc },
	{ 0x3b92, KI, A_STRUCT, 0, "IOMMU_IOAS_CHANGE_PROCESS", &s_change_process },
	{ 0x3b93, KI, A_STRUCT, 0, "IOMMU_VEVENTQ_ALLOC", &s_veventq_alloc },
	{ 0x3b94, KI, A_STRUCT, 0, "IOMMU_HW_QUEUE_ALLOC", &s_hw_queue_alloc },
	{ 0x3b95, KI, A_STRUCT | CF_NUMERIC, 0, "IOMMU_IOAS_NOIOMMU_GET_PA", &s_noiommu_pa },
	{ 0x3ba0, KI, A_TEST, 0, "IOMMU_TEST_CMD", 0 },
	/* iommufd answers these on /dev/iommu too (vfio_compat.c), so they share K_IOMMU. */
	{ 0x3b64, KI, A_NONE, 0, "VFIO_GET_API_VERSION", 0 },
	{ 0x3b65, KI, A_INT, 0, "VFIO_CHECK_EXTENSION", 0 },
	{ 0x3b66, KI, A_INT, 0, "VFIO_SET_IOMMU", 0 },
	{ 0x3b70, KI, A_STRUCT, 0, "VFIO_IOMMU_GET_INFO", &s_type1_info },
	{ 0x3b71, KI, A_STRUCT, 0, "VFIO_IOMMU_MAP_DMA", &s_dma_map },
	{ 0x3b72, KI, A_STRUCT, 0, "VFIO_IOMMU_UNMAP_DMA", &s_dma_unmap },
	{ 0x3b75, KI, A_STRUCT, 0, "VFIO_IOMMU_DIRTY_PAGES", &s_dirty_pages },
	{ 0x3b67, KM(K_GROUP), A_STRUCT, 0, "VFIO_GROUP_GET_STATUS", &s_group_status },
	{ 0x3b68, KM(K_GROUP), A_PINT, 0, "VFIO_GROUP_SET_CONTAINER", 0 },
	{ 0x3b69, KM(K_GROUP), A_NONE, 0, "VFIO_GROUP_UNSET_CONTAINER", 0 },
	{ 0x3b6a, KM(K_GROUP), A_STR, K_DEVICE, "VFIO_GROUP_GET_DEVICE_FD", 0 },
	{ 0x3b6b, KM(K_DEVICE), A_STRUCT, 0, "VFIO_DEVICE_GET_INFO", &s_device_info },
	{ 0x3b6c, KM(K_DEVICE), A_STRUCT, 0, "VFIO_DEVICE_GET_REGION_INFO", &s_region_info },
	{ 0x3b6d, KM(K_DEVICE), A_STRUCT, 0, "VFIO_DEVICE_GET_IRQ_INFO", &s_irq_info },
	{ 0x3b6e, KM(K_DEVICE), A_STRUCT, 0, "VFIO_DEVICE_SET_IRQS", &s_irq_set },
	{ 0x3b6f, KM(K_DEVICE), A_NONE, 0, "VFIO_DEVICE_RESET", 0 },
	{ 0x3b70, KM(K_DEVICE), A_STRUCT, 0, "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", &s_hot_reset_info },
	{ 0x3b71, KM(K_DEVICE), A_STRUCT, 0, "VFIO_DEVICE_PCI_HOT_RESET", &s_hot_reset },
	/* A positive result is a dma-buf fd (VFIO_DEVICE_FEATURE_DMA_BUF). */
	{ 0x3b75, KM(K_DEVICE), A_STRUCT, K_OTHER, "VFIO_DEVICE_FEATURE", &s_feature },
	{ 0x3b76, KM(K_DEVICE), A_STRUCT, 0, "VFIO_DEVICE_BIND_IOMMUFD", &s_bind },
	{ 0x3b77, KM(K_DEVICE), A_STRUCT, 0, "VFIO_DEVICE_ATTACH_IOMMUFD_PT", &s_attach },
	{ 0x3b78, KM(K_DEVICE), A_STRUCT, 0, "VFIO_DEVICE_DETACH_IOMMUFD_PT", &s_detach },
};

/* ---- IOMMU_TEST_CMD (iommufd-device-spec §5.2): one layout per op ---- */
#define TH SZ, F("op", 4, T_TESTOP, IN), F("id", 8, T_U32, IN), F("__reserved", 12, T_U32, IN), \
	FZ("last", 64, T_U32, IN)
static const struct fdesc t_add_reserved[] = { TH, NF("start", 16, T_U64, IN), NF("length", 24, T_U64, IN) };
static const struct fdesc t_mock_domain[] = {
	TH, NF("out_stdev_id", 16, T_U32, OUT), NF("out_hwpt_id", 20, T_U32, OUT), NF("out_idev_id", 24, T_U32, OUT) };
static const struct fdesc t_check_map[] = {
	TH, NF("iova", 16, T_U64, IN), NF("length", 24, T_U64, IN), NF("uptr", 32, T_U64, IN) };
static const struct fdesc t_check_refs[] = {
	TH, NF("length", 16, T_U64, IN), NF("uptr", 24, T_U64, IN), NF("refs", 32, T_U32, IN) };
static const struct fdesc t_create_access[] = { TH, NFD("out_access_fd", 16, K_OTHER), NF("flags", 20, T_U32, IN) };
static const struct fdesc t_destroy_access_pages[] = { TH, NF("access_pages_id", 16, T_U32, IN) };
static const struct fdesc t_access_pages[] = {
	TH, NF("flags", 16, T_U32, IN), NF("out_access_pages_id", 20, T_U32, OUT), NF("iova", 24, T_U64, IN),
	NF("length", 32, T_U64, IN), NF("uptr", 40, T_U64, IN) };
static const struct fdesc t_access_rw[] = {
	TH, NF("iova", 16, T_U64, IN), NF("length", 24, T_U64, IN), NF("uptr", 32, T_U64, IN), NF("flags", 40, T_U32, IN) };
static const struct fdesc t_memory_limit[] = { TH, NF("limit", 16, T_U32, IN) };
static const struct fdesc t_pt_id[] = { TH, NF("pt_id", 16, T_U32, IO) };
static const struct fdesc t_ioas_id[] = { TH, NF("ioas_id", 16, T_U32, IN) };
static const struct fdesc t_mock_domain_flags[] = {
	TH, NF("out_stdev_id", 16, T_U32, OUT), NF("out_hwpt_id", 20, T_U32, OUT), NF("out_idev_id", 24, T_U32, OUT),
	NF("dev_flags", 28, T_U32, IN) };
static const struct fdesc t_dirty[] = {
	TH, NF("flags", 16, T_U32, IN), NF("iova", 24, T_U64, IN), NF("length", 32, T_U64, IN),
	NF("page_size", 40, T_U64, IN), NF("uptr", 48, T_U64, IN), NF("out_nr_dirty", 56, T_U64, OUT) };
static const struct fdesc t_check_iotlb[] = { TH, NF("id", 16, T_U32, IN), NF("iotlb", 20, T_U32, IN) };
static const struct fdesc t_trigger_iopf[] = {
	TH, NF("dev_id", 16, T_U32, IN), NF("pasid", 20, T_U32, IN), NF("grpid", 24, T_U32, IN),
	NF("perm", 28, T_U32, IN), NF("addr", 32, T_U64, IN) };
static const struct fdesc t_check_dev_cache[] = { TH, NF("id", 16, T_U32, IN), NF("cache", 20, T_U32, IN) };
static const struct fdesc t_dev_id[] = { TH, NF("dev_id", 16, T_U32, IN) };
static const struct fdesc t_pasid_pt[] = { TH, NF("pasid", 16, T_U32, IN), NF("pt_id", 20, T_U32, IO) };
static const struct fdesc t_pasid[] = { TH, NF("pasid", 16, T_U32, IN) };
static const struct fdesc t_pasid_check[] = { TH, NF("pasid", 16, T_U32, IN), NF("hwpt_id", 20, T_U32, IN) };
static const struct fdesc t_dmabuf_get[] = { TH, NF("length", 16, T_U32, IN), NF("open_flags", 20, T_U32, IN) };
static const struct fdesc t_dmabuf_revoke[] = { TH, NF("dmabuf_fd", 16, T_S32, IN), NF("revoked", 20, T_U32, IN) };
static const struct fdesc t_unknown[] = { TH };

#define TS(m, a) { m, 72, NEL(a), 0, a }
struct tdesc { const char *op; struct sdesc s; uint8_t retfd; };
static const struct tdesc test_ops[] = {
	{ 0, TS(0, t_unknown), 0 },
	{ "IOMMU_TEST_OP_ADD_RESERVED", TS("add_reserved", t_add_reserved), 0 },
	{ "IOMMU_TEST_OP_MOCK_DOMAIN", TS("mock_domain", t_mock_domain), 0 },
	{ "IOMMU_TEST_OP_MD_CHECK_MAP", TS("check_map", t_check_map), 0 },
	{ "IOMMU_TEST_OP_MD_CHECK_REFS", TS("check_refs", t_check_refs), 0 },
	{ "IOMMU_TEST_OP_CREATE_ACCESS", TS("create_access", t_create_access), 0 },
	{ "IOMMU_TEST_OP_DESTROY_ACCESS_PAGES", TS("destroy_access_pages", t_destroy_access_pages), 0 },
	{ "IOMMU_TEST_OP_ACCESS_PAGES", TS("access_pages", t_access_pages), 0 },
	{ "IOMMU_TEST_OP_ACCESS_RW", TS("access_rw", t_access_rw), 0 },
	{ "IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT", TS("memory_limit", t_memory_limit), 0 },
	{ "IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE", TS("mock_domain_replace", t_pt_id), 0 },
	{ "IOMMU_TEST_OP_ACCESS_REPLACE_IOAS", TS("access_replace_ioas", t_ioas_id), 0 },
	{ "IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS", TS("mock_domain_flags", t_mock_domain_flags), 0 },
	{ "IOMMU_TEST_OP_DIRTY", TS("dirty", t_dirty), 0 },
	{ "IOMMU_TEST_OP_MD_CHECK_IOTLB", TS("check_iotlb", t_check_iotlb), 0 },
	{ "IOMMU_TEST_OP_TRIGGER_IOPF", TS("trigger_iopf", t_trigger_iopf), 0 },
	{ "IOMMU_TEST_OP_DEV_CHECK_CACHE", TS("check_dev_cache", t_check_dev_cache), 0 },
	{ "IOMMU_TEST_OP_TRIGGER_VEVENT", TS("trigger_vevent", t_dev_id), 0 },
	{ "IOMMU_TEST_OP_PASID_ATTACH", TS("pasid_attach", t_pasid_pt), 0 },
	{ "IOMMU_TEST_OP_PASID_REPLACE", TS("pasid_replace", t_pasid_pt), 0 },
	{ "IOMMU_TEST_OP_PASID_DETACH", TS("pasid_detach", t_pasid), 0 },
	{ "IOMMU_TEST_OP_PASID_CHECK_HWPT", TS("pasid_check", t_pasid_check), 0 },
	{ "IOMMU_TEST_OP_DMABUF_GET", TS("dmabuf_get", t_dmabuf_get), K_OTHER },
	{ "IOMMU_TEST_OP_DMABUF_REVOKE", TS("dmabuf_revoke", t_dmabuf_revoke), 0 },
};

/* errno names by the libc's numbers, so they stay right on every architecture. Where two names
 * share a number (EDEADLK/EDEADLOCK), the trace format's spelling wins. */
#include <errno.h>
static const char *const errno_names[] = {
	[EPERM] = "EPERM", [ENOENT] = "ENOENT", [ESRCH] = "ESRCH", [EINTR] = "EINTR", [EIO] = "EIO",
	[ENXIO] = "ENXIO", [E2BIG] = "E2BIG", [ENOEXEC] = "ENOEXEC", [EBADF] = "EBADF",
	[ECHILD] = "ECHILD", [EAGAIN] = "EAGAIN", [ENOMEM] = "ENOMEM", [EACCES] = "EACCES",
	[EFAULT] = "EFAULT", [ENOTBLK] = "ENOTBLK", [EBUSY] = "EBUSY", [EEXIST] = "EEXIST",
	[EXDEV] = "EXDEV", [ENODEV] = "ENODEV", [ENOTDIR] = "ENOTDIR", [EISDIR] = "EISDIR",
	[EINVAL] = "EINVAL", [ENFILE] = "ENFILE", [EMFILE] = "EMFILE", [ENOTTY] = "ENOTTY",
	[ETXTBSY] = "ETXTBSY", [EFBIG] = "EFBIG", [ENOSPC] = "ENOSPC", [ESPIPE] = "ESPIPE",
	[EROFS] = "EROFS", [EMLINK] = "EMLINK", [EPIPE] = "EPIPE", [EDOM] = "EDOM", [ERANGE] = "ERANGE",
	[EDEADLK] = "EDEADLOCK", [ENAMETOOLONG] = "ENAMETOOLONG", [ENOLCK] = "ENOLCK",
	[ENOSYS] = "ENOSYS", [ENOTEMPTY] = "ENOTEMPTY", [ELOOP] = "ELOOP", [ENOMSG] = "ENOMSG",
	[EIDRM] = "EIDRM", [ECHRNG] = "ECHRNG", [EL2NSYNC] = "EL2NSYNC", [EL3HLT] = "EL3HLT",
	[EL3RST] = "EL3RST", [ELNRNG] = "ELNRNG", [EUNATCH] = "EUNATCH", [ENOCSI] = "ENOCSI",
	[EL2HLT] = "EL2HLT", [EBADE] = "EBADE", [EBADR] = "EBADR", [EXFULL] = "EXFULL",
	[ENOANO] = "ENOANO", [EBADRQC] = "EBADRQC", [EBADSLT] = "EBADSLT", [EBFONT] = "EBFONT",
	[ENOSTR] = "ENOSTR", [ENODATA] = "ENODATA", [ETIME] = "ETIME", [ENOSR] = "ENOSR",
	[ENONET] = "ENONET", [ENOPKG] = "ENOPKG", [EREMOTE] = "EREMOTE", [ENOLINK] = "ENOLINK",
	[EADV] = "EADV", [ESRMNT] = "ESRMNT", [ECOMM] = "ECOMM", [EPROTO] = "EPROTO",
	[EMULTIHOP] = "EMULTIHOP", [EDOTDOT] = "EDOTDOT", [EBADMSG] = "EBADMSG",
	[EOVERFLOW] = "EOVERFLOW", [ENOTUNIQ] = "ENOTUNIQ", [EBADFD] = "EBADFD", [EREMCHG] = "EREMCHG",
	[ELIBACC] = "ELIBACC", [ELIBBAD] = "ELIBBAD", [ELIBSCN] = "ELIBSCN", [ELIBMAX] = "ELIBMAX",
	[ELIBEXEC] = "ELIBEXEC", [EILSEQ] = "EILSEQ", [ERESTART] = "ERESTART", [ESTRPIPE] = "ESTRPIPE",
	[EUSERS] = "EUSERS", [ENOTSOCK] = "ENOTSOCK", [EDESTADDRREQ] = "EDESTADDRREQ",
	[EMSGSIZE] = "EMSGSIZE", [EPROTOTYPE] = "EPROTOTYPE", [ENOPROTOOPT] = "ENOPROTOOPT",
	[EPROTONOSUPPORT] = "EPROTONOSUPPORT", [ESOCKTNOSUPPORT] = "ESOCKTNOSUPPORT",
	[EOPNOTSUPP] = "EOPNOTSUPP", [EPFNOSUPPORT] = "EPFNOSUPPORT", [EAFNOSUPPORT] = "EAFNOSUPPORT",
	[EADDRINUSE] = "EADDRINUSE", [EADDRNOTAVAIL] = "EADDRNOTAVAIL", [ENETDOWN] = "ENETDOWN",
	[ENETUNREACH] = "ENETUNREACH", [ENETRESET] = "ENETRESET", [ECONNABORTED] = "ECONNABORTED",
	[ECONNRESET] = "ECONNRESET", [ENOBUFS] = "ENOBUFS", [EISCONN] = "EISCONN",
	[ENOTCONN] = "ENOTCONN", [ESHUTDOWN] = "ESHUTDOWN", [ETOOMANYREFS] = "ETOOMANYREFS",
	[ETIMEDOUT] = "ETIMEDOUT", [ECONNREFUSED] = "ECONNREFUSED", [EHOSTDOWN] = "EHOSTDOWN",
	[EHOSTUNREACH] = "EHOSTUNREACH", [EALREADY] = "EALREADY", [EINPROGRESS] = "EINPROGRESS",
	[ESTALE] = "ESTALE", [EUCLEAN] = "EUCLEAN", [ENOTNAM] = "ENOTNAM", [ENAVAIL] = "ENAVAIL",
	[EISNAM] = "EISNAM", [EREMOTEIO] = "EREMOTEIO", [EDQUOT] = "EDQUOT", [ENOMEDIUM] = "ENOMEDIUM",
	[EMEDIUMTYPE] = "EMEDIUMTYPE", [ECANCELED] = "ECANCELED", [ENOKEY] = "ENOKEY",
	[EKEYEXPIRED] = "EKEYEXPIRED", [EKEYREVOKED] = "EKEYREVOKED", [EKEYREJECTED] = "EKEYREJECTED",
	[EOWNERDEAD] = "EOWNERDEAD", [ENOTRECOVERABLE] = "ENOTRECOVERABLE", [ERFKILL] = "ERFKILL",
	[EHWPOISON] = "EHWPOISON",
};

#endif
