import fs from 'node:fs';
import path from 'node:path';

export interface InspectionActivityDeps {
  datastoreDir: string;
}

/** What exists on the storage this host sees, for the reconciler to compare with the inventory. */
export function createInspectionActivities({ datastoreDir }: InspectionActivityDeps) {
  return {
    /** The disk images on the datastore, sorted by path: all of them, or one page after `after`. */
    async listDatastore(req: { after?: string; limit?: number } = {}): Promise<string[]> {
      if (!fs.existsSync(datastoreDir)) return [];
      const all = fs
        .readdirSync(datastoreDir)
        .filter((f) => f.endsWith('.qcow2'))
        .map((f) => path.join(datastoreDir, f))
        .sort();
      if (req.limit === undefined) return all;
      const after = req.after;
      return all.filter((p) => after === undefined || p > after).slice(0, req.limit);
    },

    /** Whether each file exists and its size: a catalogued backup must still be there, whole. */
    async inspectFiles(req: {
      paths: string[];
    }): Promise<{ path: string; exists: boolean; sizeBytes: number }[]> {
      return req.paths.map((p) => {
        try {
          return { path: p, exists: true, sizeBytes: fs.statSync(p).size };
        } catch {
          return { path: p, exists: false, sizeBytes: 0 };
        }
      });
    },
  };
}
