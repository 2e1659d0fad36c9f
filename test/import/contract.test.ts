import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeHeader } from '../../src/events/header.js';
import { decodeEvent } from '../../src/events/trace.js';
import { parseDeviceSpec, userHeader } from '../../src/import/devices.js';
import { importQemu, serializeTrace } from '../../src/import/qemu.js';
import type { ImportOptions, ImportResult } from '../../src/import/qemu.js';
import type { JsonObject } from '../../src/import/values.js';

// The importer's output checked by the model's own trace decoder, so an import never carries a name, field
// or value that replay would reject as a trace error.

const example = (name: string): string => readFileSync(new URL(`../../examples/qemu/${name}`, import.meta.url), 'utf8');
const run = (text: string, opts: ImportOptions = {}): ImportResult => importQemu(text.split('\n'), opts);

function declared(...specs: string[]): JsonObject {
  const devices = specs.map((s) => {
    const d = parseDeviceSpec(s);
    if (!d.ok) throw new Error(d.error);
    return d.value;
  });
  const h = userHeader(undefined, devices);
  if (!h.ok) throw new Error(h.error);
  return h.value;
}

describe('the trace contract', () => {
  it('imports every example and every converted event into a header and events the model\'s trace decoder accepts', () => {
    const header = declared('path=/dev/vfio/devices/vfio0,name=0000:01:00.0,group=15,aw=39,pgsize=0x40201000,reserved=0xfee00000-0xfeefffff:msi,dirty=on,bar=0:0x1000000');
    const every = [
      'iommu_backend_set_fd pre-opened /dev/iommu fd=27',
      'iommufd_change_process fd=27 (1)',
      'iommufd_backend_alloc_ioas  iommufd=27 ioas=2',
      'iommufd_backend_map_dma  iommufd=27 ioas=2 iova=0x0 size=0x1000 addr=0x7f0000000000 readonly=1 (0)',
      'iommufd_backend_map_file_dma  iommufd=27 ioas=2 iova=0x1000 size=0x1000 fd=9 start=0 readonly=0 (0)',
      'iommufd_backend_unmap_dma_non_exist  Unmap nonexistent mapping: iommufd=27 ioas=2 iova=0x9000 size=0x1000 (-1)',
      'iommufd_backend_unmap_dma  iommufd=27 ioas=2 iova=0x0 size=0xffffffffffffffff (0)',
      'iommufd_cdev_getfd  /dev/vfio/devices/vfio0 (fd=28)',
      'iommufd_cdev_connect_and_bind  [iommufd=27] Successfully bound device 0000:01:00.0 (fd=28): output devid=1',
      'iommufd_backend_alloc_hwpt  iommufd=27 dev_id=1 pt_id=2 flags=0x3 hwpt_type=0 len=0 data_ptr=0x0 out_hwpt=3 (0)',
      'iommufd_cdev_attach_ioas_hwpt  [iommufd=27] Successfully attached device 0000:01:00.0 (28) to id=3',
      'iommufd_cdev_pasid_attach_ioas_hwpt  [iommufd=27] Successfully attached device 0000:01:00.0 (28) pasid 5 to id=3',
      'iommufd_cdev_fail_attach_existing_container  [iommufd=27] error attach 0000:01:00.0 (28) to id=9: Invalid argument',
      'iommufd_cdev_device_info  0000:01:00.0 (28) num_irqs=5 num_regions=9 flags=3',
      'iommufd_backend_set_dirty  iommufd=27 hwpt=3 enable=1 (0)',
      'iommufd_backend_get_dirty_bitmap  iommufd=27 hwpt=3 iova=0x0 size=0x1000 flags=0x1 page_size=0x1000 (0)',
      'iommufd_backend_alloc_viommu  iommufd=27 type=1 dev_id=1 hwpt_id=3 data_len=0 data_ptr=0x0 viommu_id=4 (0)',
      'iommufd_backend_alloc_vdev  iommufd=27 dev_id=1 viommu_id=4 virt_id=0x10 vdev_id=5 (0)',
      'iommufd_viommu_alloc_eventq  iommufd=27 viommu_id=4 type=1 veventq_id=6 veventq_fd=40 (0)',
      'iommufd_backend_alloc_hw_queue  iommufd=27 viommu_id=4 queue_type=1 index=0 addr=0x1000 size=0x1000 queue_id=7 (0)',
      'iommufd_backend_invalidate_cache  iommufd=27 id=4 data_type=1 entry_len=16 entry_num=1 done_num=1 data_ptr=0x7f0000001000 (0)',
      'vfio_pci_hot_reset_result 0000:01:00.0 hot reset: Success',
      'vfio_pci_reset_flr 0000:01:00.0 FLR/VFIO_DEVICE_RESET',
      'vfio_populate_device_get_irq_info_failure VFIO_DEVICE_GET_IRQ_INFO failure: Invalid argument',
      'iommufd_cdev_pasid_detach_ioas_hwpt  [iommufd=27] Successfully detached 0000:01:00.0 pasid 5',
      'iommufd_cdev_detach_ioas_hwpt  [iommufd=27] Successfully detached 0000:01:00.0',
      'iommufd_backend_free_id  iommufd=27 id=2 (0)',
      'vfio_device_put close vdev->fd=28',
    ].join('\n');
    const legacy = `${example('t3-legacy-type1-igd.log')}vfio_iommu_map_notify iommu unmap @ 0x1000 - 0x1fff\nvfio_container_disconnect close container->fd=27\n`;
    const texts = ['t1-vfio-ap-mdev-realize-fails.log', 't2-mtty-mdev-ram-maps.log', 't4-iova-beyond-39bit-aperture.log', 't5-bar-dmabuf-map-file.log']
      .map(example).concat(every, legacy);
    for (const text of texts) {
      const r = run(text, { header });
      const h = decodeHeader(JSON.parse(JSON.stringify(r.header)));
      expect(h.ok ? 'ok' : h.problem).toBe('ok');
      const lines = serializeTrace(r).trimEnd().split('\n').slice(1);
      for (const [i, line] of lines.entries()) {
        const d = decodeEvent(JSON.parse(line), i + 2);
        expect(d.ok ? 'ok' : `${line}: ${d.problem.path}: ${d.problem.message}`).toBe('ok');
      }
    }
    expect(run(every).unused).toEqual([]);
    expect(run(every).events).toHaveLength(28);
  });
});
