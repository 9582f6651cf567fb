// Shared pieces of the browser tests: a loopback static server that records every request, and
// Debian's Chromium driven by playwright-core.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SITE = path.resolve(ROOT, process.env.LLMESR_SITE ?? 'target/e2e/site');
export const BIN = path.resolve(ROOT, process.env.LLMESR_BIN ?? 'target/release/llmesr');

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.css': 'text/css', '.json': 'application/json', '.wasm': 'application/wasm',
  '.gguf': 'application/octet-stream', '.png': 'image/png', '.svg': 'image/svg+xml',
};

/** Serves `dir` on 127.0.0.1 at a free port; `extra` maps URL paths to [type, body, status?]; `headers`
 *  are sent with every file (the benchmark asks for cross-origin isolation: finer timers). */
export async function serve(dir, extra = {}, headers = {}) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    requests.push(url.pathname);
    if (extra[url.pathname]) {
      const [type, body, code = 200] = extra[url.pathname];
      res.writeHead(code, { 'content-type': type });
      res.end(body);
      return;
    }
    const file = path.join(dir, decodeURIComponent(url.pathname));
    const target = file.endsWith('/') ? path.join(file, 'index.html') : file;
    if (!target.startsWith(dir) || !fs.existsSync(target) || fs.statSync(target).isDirectory()) {
      res.writeHead(404);
      res.end('not found');
      return;
    }
    res.writeHead(200, { ...headers, 'content-type': TYPES[path.extname(target)] ?? 'application/octet-stream',
      'content-length': fs.statSync(target).size });
    fs.createReadStream(target).pipe(res);
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const base = `http://127.0.0.1:${server.address().port}`;
  // closeAllConnections: a keep-alive connection from the browser must not hold the close open.
  return { base, requests, close: () => new Promise((ok) => { server.close(ok); server.closeAllConnections(); }) };
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Every bundle the site was built with, from its manifest: `[{name, file, path}]`. */
export function siteBundles() {
  const manifest = JSON.parse(fs.readFileSync(path.join(SITE, 'bundles/manifest.json'), 'utf8'));
  return manifest.bundles.map((b) => ({ ...b, path: path.join(SITE, 'bundles', b.file) }));
}

/** The first bundle on the site (the trained base model the other browser tests use). */
export function siteBundle() {
  return siteBundles()[0].path;
}
