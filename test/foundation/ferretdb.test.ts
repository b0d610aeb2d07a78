import { MongoServerError } from 'mongodb';
import { openInventory, type Inventory } from '../../inventory/db';
import { insertCreatingVm, updateVm } from '../../inventory/vms';
import { fileConfig } from '../helpers/test-stack';

describe('FerretDB through the mongodb driver', () => {
  let inv: Inventory;

  beforeAll(async () => {
    inv = await openInventory(fileConfig('ferretdb').config);
    await inv.db.dropDatabase();
  });
  afterAll(() => inv.close());

  test('reports itself as MongoDB 7 and round-trips a document', async () => {
    const info = await inv.db.admin().command({ buildInfo: 1 });
    expect(info.version).toMatch(/^7\./);

    const things = inv.db.collection<{ _id: string; n: number; at: Date; tags: string[] }>('things');
    const at = new Date('2026-01-02T03:04:05.678Z');
    await things.insertOne({ _id: 'thing-1', n: 42, at, tags: ['a', 'b'] });
    expect(await things.findOne({ _id: 'thing-1' })).toEqual({ _id: 'thing-1', n: 42, at, tags: ['a', 'b'] });
  });

  test('a duplicate insert on a unique index fails with code 11000', async () => {
    const claims = inv.db.collection<{ _id: string; key: string }>('claims');
    await claims.createIndex({ key: 1 }, { unique: true });
    await claims.insertOne({ _id: 'claim-1', key: 'host-a/slot-1' });
    const err = await claims.insertOne({ _id: 'claim-2', key: 'host-a/slot-1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoServerError);
    expect((err as MongoServerError).code).toBe(11000);
    expect(await claims.countDocuments({ key: 'host-a/slot-1' })).toBe(1);
  });

  test('writers of one VM that read the same revision: exactly one writes it, none overwrites a change it did not see', async () => {
    await insertCreatingVm(inv, {
      _id: 'contended',
      image: 'img',
      memoryMiB: 128,
      vcpus: 1,
      labels: {},
      guest: { firmware: 'bios', guestAgent: false, sshKeys: [], dataDisks: [], cpuModel: 'qemu64' },
    });
    // Ten writers decide on revision 1 at once, as HA and the reconciler may from one report.
    const won = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        updateVm(inv, 'contended', { stateReason: `writer ${i}` }, { ifRevision: 1 }),
      ),
    );
    expect(won.filter(Boolean)).toHaveLength(1);
    const vm = await inv.vms.findOne({ _id: 'contended' });
    expect(vm).toMatchObject({ revision: 2, stateReason: `writer ${won.indexOf(true)}` });
    // Unconditional writers all land, one revision each.
    await Promise.all(
      Array.from({ length: 5 }, (_, i) => updateVm(inv, 'contended', { stateReason: `after ${i}` })),
    );
    expect((await inv.vms.findOne({ _id: 'contended' }))?.revision).toBe(7);
    expect(await updateVm(inv, 'contended', { state: 'crashed' }, { ifRevision: 2 })).toBe(false);
    expect((await inv.vms.findOne({ _id: 'contended' }))?.state).toBe('creating');
  });
});
