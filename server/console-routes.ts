import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { repoRoot } from '../domain/config';

/** The content types of the console's files, by extension; any other file is not served. */
const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/**
 * Serves the web console (console/: its pages are ES modules, no build step) at `/console/`. Its pages hold no secret: the token is
 * asked for in the page and sent to the API only. The content security policy lets the page
 * load only its own files and talk only to this server.
 */
export function registerConsole(app: FastifyInstance): void {
  const dir = path.join(repoRoot, 'console');
  // Read once, at start: each file gets its own route, so no request path ever reaches the disk.
  const names = fs.readdirSync(dir).filter((name) => types[path.extname(name)]);
  const content = Object.fromEntries(names.map((name) => [name, fs.readFileSync(path.join(dir, name))]));
  // blob: for the VM screenshot, which the page fetches with its token and shows from memory.
  const csp = "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'; base-uri 'none'";
  for (const name of names) {
    const urls = name === 'index.html' ? ['/console/', '/console/index.html'] : [`/console/${name}`];
    for (const url of urls)
      app.get(url, (_req, reply) =>
        reply.type(types[path.extname(name)]).header('content-security-policy', csp).send(content[name]),
      );
  }
  app.get('/', (_req, reply) => reply.redirect('/console/'));
}
