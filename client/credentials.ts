import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Where `virtflow login` keeps the API's address and the operator's token (mode 0600). */
export function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'virtflow', 'credentials.json');
}

export interface Credentials {
  url: string;
  token: string;
}

/**
 * The API to talk to: VIRTFLOW_API_URL and VIRTFLOW_API_TOKEN (automation), else what
 * `virtflow login` stored; undefined when neither is there (the CLI then works directly).
 */
export function readCredentials(env: NodeJS.ProcessEnv = process.env): Credentials | undefined {
  if (env.VIRTFLOW_API_URL && env.VIRTFLOW_API_TOKEN)
    return { url: env.VIRTFLOW_API_URL, token: env.VIRTFLOW_API_TOKEN };
  const file = credentialsPath(env);
  if (!fs.existsSync(file)) return undefined;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Credentials;
}

export function saveCredentials(creds: Credentials, env: NodeJS.ProcessEnv = process.env): string {
  const file = credentialsPath(env);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, JSON.stringify(creds), { mode: 0o600 });
  return file;
}

export function forgetCredentials(env: NodeJS.ProcessEnv = process.env): boolean {
  const file = credentialsPath(env);
  if (!fs.existsSync(file)) return false;
  fs.rmSync(file);
  return true;
}
