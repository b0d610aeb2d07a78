import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { networkConfigYaml, type NicConfig } from '../domain/network';

const run = promisify(execFile);

/** What a VM's first-boot configuration says; the seed is rebuilt whenever it changes. */
export interface SeedSettings {
  instanceId: string;
  hostname: string;
  sshKeys: string[];
  /** The operator's user-data, passed through as given (cloud-config, a script, multipart). */
  userData?: string;
  /** Static addresses of the VM's NICs, as NoCloud's network-config (absent: no NICs). */
  nics?: NicConfig[];
}

/** YAML's double-quoted scalar is JSON's string syntax, so JSON.stringify quotes safely. */
const yamlString = (s: string) => JSON.stringify(s);

function metaData(s: SeedSettings): string {
  const lines = [`instance-id: ${yamlString(s.instanceId)}`, `local-hostname: ${yamlString(s.hostname)}`];
  // NoCloud reads SSH keys from meta-data's public-keys, so user-data stays the operator's own.
  if (s.sshKeys.length > 0) lines.push('public-keys:', ...s.sshKeys.map((k) => `  - ${yamlString(k)}`));
  return lines.join('\n') + '\n';
}

/**
 * Writes the NoCloud seed of a VM: an ISO 9660 volume labelled `cidata` holding meta-data,
 * user-data and (with NICs) network-config, as cloud-init expects it. Built beside the target and renamed into place, so a
 * guest never sees half a seed; left alone when its settings have not changed.
 * Returns whether it was (re)written.
 */
export async function writeSeed(seedPath: string, settings: SeedSettings): Promise<boolean> {
  const stampPath = `${seedPath}.json`;
  const stamp = JSON.stringify(settings);
  if (fs.existsSync(seedPath) && readOrEmpty(stampPath) === stamp) return false;

  const work = fs.mkdtempSync(path.join(path.dirname(seedPath), '.seed-'));
  try {
    fs.writeFileSync(path.join(work, 'meta-data'), metaData(settings));
    fs.writeFileSync(path.join(work, 'user-data'), settings.userData ?? '#cloud-config\n{}\n');
    const files = ['meta-data', 'user-data'];
    if (settings.nics?.length) {
      fs.writeFileSync(path.join(work, 'network-config'), networkConfigYaml(settings.nics));
      files.push('network-config');
    }
    const iso = path.join(work, 'seed.iso');
    await run('genisoimage', [
      '-quiet',
      '-output',
      iso,
      '-volid',
      'cidata',
      '-joliet',
      '-rock',
      ...files.map((f) => path.join(work, f)),
    ]);
    fs.renameSync(iso, seedPath);
    fs.writeFileSync(stampPath, stamp);
    return true;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export function removeSeed(seedPath: string): void {
  for (const f of [seedPath, `${seedPath}.json`]) fs.rmSync(f, { force: true });
}

function readOrEmpty(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
