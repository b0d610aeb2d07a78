import fs from 'node:fs';
import path from 'node:path';

export interface InspectionActivityDeps {
  datastoreDir: string;
}

/** What exists on the storage this host sees, for the reconciler to compare with the inventory. */
export function createInspectionActivities({ datastoreDir }: InspectionActivityDeps) {
  return {
    /** Every disk image on the datastore. */
    async listDatastore(): Promise<string[]> {
      if (!fs.existsSync(datastoreDir)) return [];
      return fs
        .readdirSync(datastoreDir)
        .filter((f) => f.endsWith('.qcow2'))
        .map((f) => path.join(datastoreDir, f));
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
