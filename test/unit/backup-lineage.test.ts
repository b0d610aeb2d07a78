import { lineageProblem } from '../../domain/backup-lineage';

const previous = { bitmap: 'vf-chain-1', path: '/backups/app/1.qcow2' };
const bitmap = { name: 'vf-chain-1', inconsistent: false, recording: true };

describe('backup lineage', () => {
  test('an incremental may follow only a parent on disk and a consistent, recording bitmap', () => {
    expect(lineageProblem(previous, { parentExists: true, bitmaps: [bitmap] })).toBeNull();
  });

  test.each([
    [
      'the parent file is gone',
      { parentExists: false, bitmaps: [bitmap] },
      /parent backup file \/backups\/app\/1\.qcow2 is missing/,
    ],
    [
      'the bitmap is not on the disk',
      { parentExists: true, bitmaps: [] },
      /dirty bitmap vf-chain-1 is not on the disk/,
    ],
    [
      "another chain's bitmap only",
      { parentExists: true, bitmaps: [{ ...bitmap, name: 'vf-chain-0' }] },
      /vf-chain-1 is not on the disk/,
    ],
    [
      'the bitmap is inconsistent',
      { parentExists: true, bitmaps: [{ ...bitmap, inconsistent: true }] },
      /is inconsistent/,
    ],
    [
      'the bitmap stopped recording',
      { parentExists: true, bitmaps: [{ ...bitmap, recording: false }] },
      /is not recording/,
    ],
  ])('a full backup is needed when %s, and the reason says so', (_what, inspection, reason) => {
    expect(lineageProblem(previous, inspection)).toMatch(reason);
  });
});
