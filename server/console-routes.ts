import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { repoRoot } from '../domain/config';

/** The console's three files, read once: a fixed list, so no request path ever reaches the disk. */
const files: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

/**
 * Serves the web console (console/) at `/console/`. Its pages hold no secret: the token is
 * asked for in the page and sent to the API only. The content security policy lets the page
 * load only its own files and talk only to this server.
 */
export function registerConsole(app: FastifyInstance): void {
  const dir = path.join(repoRoot, 'console');
  const content = Object.fromEntries(
    Object.keys(files).map((name) => [name, fs.readFileSync(path.join(dir, name))]),
  );
  const csp = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";
  for (const name of Object.keys(files)) {
    const urls = name === 'index.html' ? ['/console/', '/console/index.html'] : [`/console/${name}`];
    for (const url of urls)
      app.get(url, (_req, reply) =>
        reply.type(files[name]).header('content-security-policy', csp).send(content[name]),
      );
  }
  app.get('/', (_req, reply) => reply.redirect('/console/'));
}
