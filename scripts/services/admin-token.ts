import fs from 'node:fs';
import { FLEET } from '../../domain/access';
import { authenticateToken, createApiToken } from '../../inventory/api-tokens';
import type { Inventory } from '../../inventory/db';

/**
 * The local stack's administrator token, kept in `file` (mode 0600) across restarts: reused while
 * it still authenticates against this inventory, made anew otherwise (a fresh database).
 */
export async function ensureLocalAdminToken(inv: Inventory, file: string): Promise<string> {
  const kept = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() : '';
  if (kept && typeof (await authenticateToken(inv, kept)) !== 'string') return kept;
  const { token } = await createApiToken(
    inv,
    { name: 'local-admin', grants: [{ project: FLEET, role: 'admin' }] },
    'npm start',
  );
  fs.writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return token;
}
