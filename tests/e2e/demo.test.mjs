// The demo page end to end: search, add movies, see recommendations change, remove, clear; no
// request leaves for another origin and nothing is fetched after the bundle has loaded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ROOT, SITE, serve, launch } from './harness.mjs';

let server, browser;

before(async () => {
  server = await serve(SITE);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('pick movies, get recommendations, clear', async () => {
  const page = await browser.newPage();
  const errors = [];
  const foreign = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('request', (r) => { if (!r.url().startsWith(server.base)) foreign.push(r.url()); });
  await page.goto(server.base + '/');
  await page.waitForSelector('#status[data-ready="true"]', { timeout: 60_000 });
  const loaded = server.requests.length;

  await page.fill('#search', 'star wars');
  const first = page.locator('#matches button').first();
  await first.waitFor();
  await first.click();
  // Recommendations arrive from the worker; #recs names the session they were computed for.
  const recsFor = (n) => page.waitForFunction((n) => {
    const f = document.querySelector('#recs').dataset.for;
    return f !== undefined && (f === '' ? 0 : f.split(',').length) === n;
  }, n);
  await recsFor(1);
  const before = await page.locator('#recs li[data-id]').evaluateAll((ls) => ls.map((l) => l.dataset.id));
  assert.equal(before.length, 10);

  await page.fill('#search', 'toy story');
  await page.locator('#matches button').first().click();
  await recsFor(2);
  const after2 = await page.locator('#recs li[data-id]').evaluateAll((ls) => ls.map((l) => l.dataset.id));
  assert.equal(after2.length, 10);
  assert.notDeepEqual(after2, before, 'recommendations change with the session');
  assert.equal(await page.locator('#session li').count(), 2);
  const sessionTitles = await page.locator('#session li span').allTextContents();
  const recTitles = await page.locator('#recs li .title').allTextContents();
  assert.ok(recTitles.every((t) => !sessionTitles.includes(t)), 'session items are not recommended');
  assert.match(await page.textContent('#latency'), /ms/);

  await page.locator('#session li button').first().click();
  assert.equal(await page.locator('#session li').count(), 1);
  await page.click('#clear');
  await recsFor(0);
  assert.equal(await page.locator('#session li').count(), 0);
  assert.equal(await page.locator('#recs li[data-id]').count(), 0);

  assert.deepEqual(errors, []);
  assert.deepEqual(foreign, []);
  assert.equal(server.requests.length, loaded, `requests after load: ${server.requests.slice(loaded)}`);
  await page.screenshot({ path: path.join(ROOT, 'target/e2e/demo.png'), fullPage: true });

  // A second visit loads the bundle from the Cache API: the page works with no bundle request.
  const bundleRequests = () => server.requests.filter((r) => r.endsWith('.gguf')).length;
  const fetchedBefore = bundleRequests();
  await page.reload();
  await page.waitForSelector('#status[data-ready="true"]', { timeout: 60_000 });
  assert.match(await page.textContent('#status'), /cache/);
  assert.equal(bundleRequests(), fetchedBefore, 'the bundle is not downloaded again');
});
