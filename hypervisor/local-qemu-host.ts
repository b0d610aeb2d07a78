import { dataPaths } from '../domain/config';
import { QemuHost } from './qemu-host';

/**
 * The QEMU processes of one host of this machine's data directory, read as its agent reads
 * them: for the stack's power-off, tests, benchmarks and
 * chaos checks that look at hosts without going through an agent.
 */
export function localQemuHost(dataDir: string, hostId: string): QemuHost {
  return new QemuHost(dataPaths(dataDir).hostDir(hostId));
}
