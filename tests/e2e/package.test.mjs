// pkg/ as a package: its package.json matches the crate, its types declare the API, and the
// README's usage example runs against the built package and a bundle, in Node, as written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, siteBundle } from './harness.mjs';

test('pkg/package.json names the built files and the crate version', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'pkg/package.json'), 'utf8'));
  const cargo = fs.readFileSync(path.join(ROOT, 'Cargo.toml'), 'utf8');
  assert.equal(pkg.version, cargo.match(/^version = "(.+)"/m)[1]);
  for (const f of pkg.files) assert.ok(fs.existsSync(path.join(ROOT, 'pkg', f)), `pkg/${f} exists`);
  const types = fs.readFileSync(path.join(ROOT, 'pkg', pkg.types), 'utf8');
  assert.match(types, /export class Recommender/);
  assert.match(types, /recommend\(session: any, k: number/);
});

test("the README's package example runs", () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const block = readme.split('<!-- package-example -->')[1]?.match(/```js\n([\s\S]*?)```/)?.[1];
  assert.ok(block, 'README has the package example');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llm-esr-pkg-'));
  try {
    const dest = path.join(dir, 'node_modules/llm-esr');
    fs.mkdirSync(dest, { recursive: true });
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'pkg/package.json'), 'utf8'));
    for (const f of ['package.json', ...pkg.files]) fs.copyFileSync(path.join(ROOT, 'pkg', f), path.join(dest, f));
    fs.writeFileSync(path.join(dir, 'package.json'), '{"type": "module"}');
    fs.copyFileSync(siteBundle(), path.join(dir, 'bundle.gguf'));
    fs.writeFileSync(path.join(dir, 'example.mjs'), block);
    const out = execFileSync(process.execPath, ['example.mjs'], { cwd: dir, encoding: 'utf8' });
    // The library's one console.debug line ("llm-esr: loaded N items") goes to stdout in Node.
    const lines = out.trim().split('\n').filter((l) => !l.startsWith('llm-esr:'));
    assert.equal(lines.length, 5, out);
    for (const l of lines) assert.match(l, /^\d+\t-?\d+\.\d{3}\t.+/);
    assert.ok(lines.every((l) => !['1', '2', '3'].includes(l.split('\t')[0])), 'session items left out');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
