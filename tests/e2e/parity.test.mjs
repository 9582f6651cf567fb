// The wasm build, in headless Chromium, must return the same top-10 as the native CLI for the same
// bundle: identical ids in identical order, scores within 1e-5. Bad input must raise clear errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { BIN, SITE, serve, launch, siteBundle, siteBundles } from './harness.mjs';

let server, browser, page;
const bundlePath = siteBundle();
const bundleUrl = '/bundles/' + bundlePath.split('/').pop();

before(async () => {
  server = await serve(SITE, { '/blank.html': ['text/html', '<!doctype html><title>t</title>'] });
  browser = await launch();
  page = await browser.newPage();
  await page.goto(server.base + '/blank.html');
  await page.evaluate(async (url) => {
    const mod = await import('/pkg/llm_esr.js');
    await mod.default();
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    window.mod = mod;
    window.bytes = bytes;
    window.rec = new mod.Recommender(bytes);
  }, bundleUrl);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

function native(session, k, bundle = bundlePath) {
  const out = execFileSync(BIN, ['recommend', '--bundle', bundle, '--session', session.join(','),
    '--k', String(k), '--json'], { encoding: 'utf8' });
  return JSON.parse(out);
}

const browserRecs = (session, k) => page.evaluate(([s, k]) => window.rec.recommend(s, k), [session, k]);
const browserError = (fn, arg) => page.evaluate(([fn, arg]) => {
  try { new Function('rec', 'mod', 'bytes', 'arg', fn)(window.rec, window.mod, window.bytes, arg); return null; }
  catch (e) { return `${e.constructor.name}: ${e.message}`; }
}, [fn, arg]);

test('browser top-10 equals native top-10 for several sessions', async () => {
  const n = await page.evaluate(() => window.rec.numItems);
  assert.ok(n > 100, `catalogue of ${n} items`);
  const long = Array.from({ length: 260 }, (_, i) => 1 + ((i * 37) % n)); // longer than max_len
  const sessions = [[1], [1, 2, 3], [n, 5, 50, 500 % n + 1], [7, 7, 7, 9], long];
  for (const s of sessions) {
    const want = native(s, 10);
    const got = await browserRecs(s, 10);
    assert.equal(got.length, 10);
    assert.deepEqual(got.map((r) => r.id), want.map((r) => r.id), `ids for session ${s.slice(0, 5)}`);
    for (let i = 0; i < 10; i++) {
      assert.ok(Math.abs(got[i].score - want[i].score) <= 1e-5,
        `score ${i}: browser ${got[i].score} native ${want[i].score}`);
      assert.equal(got[i].title, want[i].title);
      assert.ok(!s.includes(got[i].id), 'session items are excluded');
    }
  }
});

test('bad input raises clear errors in the browser', async () => {
  assert.match(await browserError('rec.recommend([], 10)'), /empty session/);
  assert.match(await browserError('rec.recommend([999999], 10)'), /unknown item id 999999/);
  assert.match(await browserError('rec.recommend([NaN], 10)'), /not a non-negative integer/);
  assert.match(await browserError('rec.recommend([1.5], 10)'), /not a non-negative integer/);
  assert.match(await browserError('rec.recommend([-1], 10)'), /item id -1 is not a non-negative integer/);
  assert.match(await browserError('rec.recommend([1, "2"], 10)'), /array of item ids/);
  assert.match(await browserError('rec.recommend(null, 10)'), /array of item ids/);
  assert.match(await browserError('rec.recommend("1,2", 10)'), /array of item ids/);
  assert.match(await browserError('rec.recommend([1], 0)'), /k must be at least 1/);
  assert.match(await browserError('new mod.Recommender(new Uint8Array([1,2,3]))'), /GGUF magic/);
  assert.match(await browserError('new mod.Recommender(new Uint8Array(0))'), /GGUF magic/);
  assert.match(await browserError(
    'new mod.Recommender(new TextEncoder().encode("<!doctype html><h1>404</h1>"))'), /GGUF magic/);
  // Errors are real Error objects, so callers can catch and show them.
  assert.match(await browserError('rec.recommend([], 1)'), /^Error: /);
  // Flip one byte in the middle of the tensor data: the checksum must catch it.
  assert.match(await browserError(
    'const b = bytes.slice(); b[Math.floor(b.length * 0.7)] ^= 0xff; new mod.Recommender(b)'), /checksum mismatch/);
  assert.match(await browserError('new mod.Recommender(bytes.slice(0, bytes.length - 100))'), /bundle/);
  assert.match(await browserError('rec.item(0)'), /unknown item id 0/);
});

test('repeated ids are a valid session and match native', async () => {
  const s = [3, 3, 3, 8, 3];
  const got = await browserRecs(s, 5);
  const want = native(s, 5);
  assert.deepEqual(got.map((r) => r.id), want.map((r) => r.id));
  assert.ok(got.every((r) => r.id !== 3 && r.id !== 8));
});

test('k larger than the catalogue returns every other item, sorted', async () => {
  const n = await page.evaluate(() => window.rec.numItems);
  const all = await browserRecs([1, 2], n + 50);
  assert.equal(all.length, n - 2);
  for (let i = 1; i < all.length; i++) assert.ok(all[i - 1].score >= all[i].score);
  assert.ok(fs.existsSync(bundlePath));
});

test('every bundle on the site (each backbone, base and LLM-ESR) matches native', async () => {
  const bundles = siteBundles();
  const names = bundles.map((b) => b.name).join(' ');
  assert.match(names, /-q8/, 'a Q8_0 bundle is on the site');
  assert.match(names, /-q4/, 'a Q4_0 bundle is on the site');
  for (const kind of ['sasrec', 'gru4rec', 'bert4rec']) {
    assert.match(names, new RegExp(`${kind}-llmesr`), `an LLM-ESR ${kind} bundle is on the site`);
  }
  for (const b of bundles) {
    const info = await page.evaluate(async (url) => {
      const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
      window.other = new window.mod.Recommender(bytes);
      return { n: window.other.numItems, info: window.other.info() };
    }, '/bundles/' + b.file);
    const n = info.n;
    // The long session passes max_len but leaves candidates in small catalogues too.
    const long = Array.from({ length: 230 }, (_, i) => 1 + ((i * 13) % Math.max(1, n - 20)));
    const sessions = [[1], [2, 3, 4], long];
    for (const s of sessions) {
      const want = native(s, 10, b.path);
      const got = await page.evaluate(([s]) => window.other.recommend(s, 10), [s]);
      assert.equal(want.length, 10, `${b.name}: ten candidates left`);
      assert.deepEqual(got.map((r) => r.id), want.map((r) => r.id), `${b.name}: ids for ${s.slice(0, 4)}`);
      for (let i = 0; i < 10; i++) {
        assert.ok(Math.abs(got[i].score - want[i].score) <= 1e-4,
          `${b.name} score ${i}: browser ${got[i].score} native ${want[i].score}`);
      }
    }
    if (/llmesr/.test(b.name)) {
      assert.ok(info.info.model.semantic?.folded, `${b.name} carries the folded semantic table`);
    }
  }
});
