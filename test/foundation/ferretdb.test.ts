import { MongoServerError } from 'mongodb';
import { openInventory, type Inventory } from '../../inventory/db';
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
});
