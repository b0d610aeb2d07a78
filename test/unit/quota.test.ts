import { quotaShortfall } from '../../domain/quota';

const GiB = 1024 ** 3;
const none = { vms: 0, vcpus: 0, memoryMiB: 0, diskBytes: 0 };

describe("a project's quota", () => {
  test('a new VM is checked against every limit, each shortfall named by its field', () => {
    const quota = { vms: 2, vcpus: 4, memoryMiB: 1024, diskGiB: 10 };
    const used = { vms: 2, vcpus: 3, memoryMiB: 900, diskBytes: 9 * GiB };
    expect(quotaShortfall(quota, used, { vcpus: 2, memoryMiB: 256, diskBytes: 2 * GiB })).toEqual([
      'vms: 2 of 2 already used',
      'vcpus: needs 2, 1 of 4 left',
      'memoryMiB: needs 256, 124 of 1024 left',
      'diskGiB: needs 2 GiB, 1 GiB of 10 GiB left',
    ]);
    expect(quotaShortfall(quota, none, { vcpus: 4, memoryMiB: 1024, diskBytes: 10 * GiB })).toEqual([]);
    expect(quotaShortfall({}, used, { vcpus: 99, memoryMiB: 99_999, diskBytes: 99 * GiB })).toEqual([]);
  });

  test('a disk counts to the byte: one byte over the quota is refused', () => {
    const vm = { vcpus: 1, memoryMiB: 128, diskBytes: 4 * GiB + 1 };
    expect(quotaShortfall({ diskGiB: 4 }, none, vm)).toEqual(['diskGiB: needs 4.0 GiB, 4 GiB of 4 GiB left']);
    expect(quotaShortfall({ diskGiB: 4 }, none, { ...vm, diskBytes: 4 * GiB })).toEqual([]);
  });

  test('a change is checked only where it grows, for its growth: a lowered quota does not block it', () => {
    // The project holds 3 VMs against a quota lowered to 2, and more vCPUs than it allows now.
    const quota = { vms: 2, vcpus: 2, diskGiB: 10 };
    const others = { vms: 2, vcpus: 2, memoryMiB: 256, diskBytes: 6 * GiB };
    const before = { vcpus: 1, memoryMiB: 128, diskBytes: 2 * GiB };
    expect(quotaShortfall(quota, others, { ...before, diskBytes: 4 * GiB }, before)).toEqual([]);
    expect(quotaShortfall(quota, others, { ...before, diskBytes: 5 * GiB }, before)).toEqual([
      'diskGiB: needs 3 GiB, 2 GiB of 10 GiB left',
    ]);
  });
});
