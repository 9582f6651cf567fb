// The demo page end to end, in headless Chromium: search and add movies, recommendations change
// with the session, explain themselves and can be added to it, the session survives a reload and is
// gone after "clear", the tail-exposure control raises the tail share, the model picker switches
// bundles (one load for a run of arrow keys), a broken bundle leaves the page working and is never
// cached, bundles dropped from the manifest are dropped from the cache, a broken bundle list is
// named, new items are marked and recommended, focus follows the keyboard user, markup in titles
// stays text, and after the bundle has loaded the page makes no request at all.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, SITE, serve, launch, siteBundles } from './harness.mjs';

let server, browser, context;

before(async () => {
  server = await serve(SITE);
  browser = await launch();
  context = await browser.newContext();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** Waits until the page has a bundle loaded and answers. */
const ready = (page) => page.waitForSelector('#status[data-ready="true"]', { timeout: 60_000 });

/** Waits until the page has switched to bundle `name` and answers; a timeout names the status. */
const switchedTo = (page, name) => page.waitForFunction((n) => {
  const s = document.querySelector('#status');
  return s.dataset.bundle === n && s.dataset.ready === 'true';
}, name, { timeout: 30_000 })
  .catch(async (e) => { throw new Error(`${e.message}; status: ${await page.textContent('#status')}`); });

/** The paths of the bundles in the worker's Cache API, sorted. */
const cachedPaths = (page) => page.evaluate(async () =>
  (await (await caches.open('llm-esr-bundles-v1')).keys()).map((r) => new URL(r.url).pathname).sort());

/** A page that records every request and error. */
async function open(url) {
  const page = await context.newPage();
  const log = { errors: [], requests: [] };
  page.on('pageerror', (e) => log.errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') log.errors.push(m.text()); });
  // Worker requests (the wasm, the bundle) show up here too, through the context.
  context.on('request', (r) => log.requests.push(r.url()));
  await page.goto(server.base + url);
  await ready(page);
  return { page, log };
}

/** Waits until #recs shows the answer for a session of `n` items (and tail weight `w`). */
const recsFor = (page, n, w = '0') => page.waitForFunction(([n, w]) => {
  const r = document.querySelector('#recs');
  const f = r.dataset.for;
  const len = f === undefined ? -1 : f === '' ? 0 : f.split(',').length;
  return len === n && (n === 0 || r.dataset.weight === w);
}, [n, w]);

const recIds = (page) => page.locator('#recs li[data-id]').evaluateAll((ls) => ls.map((l) => l.dataset.id));

/** Empties a session left by an earlier test (the button is disabled when there is none). */
async function clearIfAny(page) {
  if (await page.isEnabled('#clear')) await page.click('#clear');
}

async function addFirst(page, query) {
  await page.fill('#search', query);
  const first = page.locator('#matches button').first();
  await first.waitFor();
  await first.click();
}

test('pick movies, get explained recommendations, no request after load', async () => {
  const { page, log } = await open('/');
  const loaded = log.requests.length;
  // The first visit downloads the bundle under a digest-versioned URL.
  assert.ok(log.requests.some((u) => /\.gguf\?v=[0-9a-f]{16}$/.test(u)), log.requests.join(' '));

  await addFirst(page, 'star wars');
  await recsFor(page, 1);
  const before = await recIds(page);
  assert.equal(before.length, 10);
  // Search ignores case.
  await page.fill('#search', 'TOY STORY');
  await page.locator('#matches button').first().waitFor();
  await page.press('#search', 'Enter'); // the keyboard path: Enter adds the first match
  await recsFor(page, 2);
  const after2 = await recIds(page);
  assert.equal(after2.length, 10);
  assert.notDeepEqual(after2, before, 'recommendations change with the session');
  const sessionTitles = await page.locator('#session li span').allTextContents();
  assert.equal(sessionTitles.length, 2);
  const recTitles = await page.locator('#recs li .title').allTextContents();
  assert.ok(recTitles.every((t) => !sessionTitles.includes(t)), 'session items are not recommended');
  const because = await page.locator('#recs li .because').allTextContents();
  assert.equal(because.length, 10);
  assert.ok(because.every((b) => sessionTitles.some((t) => b === `because you added ${t}`)), because.join('|'));
  assert.match(await page.textContent('#latency'), /\d ms/);
  // A recommendation goes into the session with one press, and leaves the list.
  const top = await page.locator('#recs li .title').first().textContent();
  // Pressed twice before the list is redrawn: added once.
  await page.locator('#recs li button').first().evaluate((b) => { b.click(); b.click(); });
  await recsFor(page, 3);
  assert.deepEqual(await page.locator('#session li span').allTextContents(), [...sessionTitles, top]);
  assert.ok(!(await page.locator('#recs li .title').allTextContents()).includes(top));
  await page.locator('#session li button').last().click();
  await recsFor(page, 2);
  assert.match(await page.textContent('#exposure'), /Tail items in this list: \d+ of 10/);
  // The README's screenshot.
  await page.fill('#search', '');
  await page.screenshot({ path: path.join(ROOT, 'target/e2e/demo.png'), fullPage: true });

  await page.locator('#session li button').first().click();
  await recsFor(page, 1);
  assert.equal(await page.locator('#session li').count(), 1);
  await page.fill('#tail', '0.5');
  await recsFor(page, 1, '0.5');
  await page.fill('#tail', '0');
  await page.click('#clear');
  await recsFor(page, 0);

  assert.deepEqual(log.errors, []);
  assert.ok(log.requests.every((u) => u.startsWith(server.base)), 'no request to another origin');
  assert.deepEqual(log.requests.slice(loaded), [], 'no request of any kind after the bundle loaded');
  await page.close();
});

test('the session survives a reload, comes from the cache, and "clear" removes it', async () => {
  const { page, log } = await open('/');
  await clearIfAny(page);
  await addFirst(page, 'star wars');
  await addFirst(page, 'fargo');
  await recsFor(page, 2);
  const titles = await page.locator('#session li span').allTextContents();
  const bundleGets = () => log.requests.filter((u) => new URL(u).pathname.endsWith('.gguf')).length;
  const fetched = bundleGets();

  await page.reload();
  await ready(page);
  assert.deepEqual(await page.locator('#session li span').allTextContents(), titles, 'session restored');
  await recsFor(page, 2);
  assert.match(await page.textContent('#status'), /cache/);
  assert.equal(bundleGets(), fetched, 'the bundle came from the Cache API, not the network');

  await page.click('#clear');
  await recsFor(page, 0);
  assert.equal(await page.locator('#session li').count(), 0);
  assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('llm-esr:')).length), 0);
  await page.reload();
  await ready(page);
  assert.equal(await page.locator('#session li').count(), 0, 'nothing comes back after clearing');
  await page.close();
});

test('the tail-exposure control raises the tail share of the list', async () => {
  const { page } = await open('/');
  await clearIfAny(page);
  for (const q of ['star wars', 'fargo', 'toy story']) await addFirst(page, q);
  await recsFor(page, 3);
  const tailCount = () => page.locator('#recs li[data-tail="true"]').count();
  const before = await tailCount();
  await page.fill('#tail', '2');
  await recsFor(page, 3, '2');
  const after = await tailCount();
  assert.ok(after > before, `tail items: ${before} at weight 0, ${after} at weight 2`);
  await page.click('#clear');
  await page.close();
});

test('the model picker switches bundles', async () => {
  const { page } = await open('/');
  const names = siteBundles().map((b) => b.name);
  assert.ok(names.length >= 2);
  const other = names.find((n) => /ml-100k-sasrec-llmesr/.test(n));
  await page.selectOption('#model', other);
  await switchedTo(page, other);
  assert.match(await page.textContent('#status'), /LLM-ESR/);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'model', 'focus back on the picker');
  await addFirst(page, 'star wars');
  await recsFor(page, 1);
  assert.equal((await recIds(page)).length, 10);
  await page.click('#clear');
  await page.close();
});

test('stepping through the model picker with arrow keys loads only the model it stops on', async () => {
  const { page } = await open('/');
  const names = siteBundles().map((b) => b.name);
  assert.ok(names.length >= 3);
  // Every "Ready" line the status shows from now on.
  await page.evaluate(() => {
    window.__ready = [];
    const s = document.querySelector('#status');
    new MutationObserver(() => {
      if (s.textContent.startsWith('Ready: ')) window.__ready.push(s.textContent);
    }).observe(s, { childList: true, characterData: true, subtree: true });
  });
  await page.focus('#model');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowDown');
  await switchedTo(page, names[2]);
  // Down and back up again comes to rest on the model in use: nothing more loads.
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowUp');
  await page.waitForTimeout(1500);
  const seen = await page.evaluate(() => window.__ready);
  assert.equal(seen.length, 1, `one model loaded, not each one passed: ${JSON.stringify(seen)}`);
  assert.match(seen[0], new RegExp(`^Ready: ${names[2]} `));
  assert.equal(await page.inputValue('#model'), names[2]);
  await page.close();
});

test('markup in titles is shown as text and never runs', async () => {
  const { page, log } = await open('/?bundle=markup');
  await page.fill('#search', 'img');
  await page.locator('#matches button').first().waitFor();
  const shown = await page.locator('#matches li span').first().textContent();
  assert.match(shown, /<img src=x onerror=/);
  await page.locator('#matches button').first().click();
  await recsFor(page, 1);
  const recTitles = await page.locator('#recs li .title').allTextContents();
  assert.ok(recTitles.some((t) => t.includes('<')), 'markup shows literally in recommendations');
  assert.equal(await page.locator('main img, main script, main b').count(), 0, 'no element made from a title');
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no handler ran');
  assert.deepEqual(log.errors, []);
  await page.click('#clear');
  await page.close();
});

test('new items added from their text are marked "new" in search and come up in the lists', async () => {
  const { page, log } = await open('/?bundle=ml-100k-sasrec-llmesr-new');
  await clearIfAny(page);
  await page.fill('#search', 'toy story');
  await page.locator('#matches li').nth(1).waitFor();
  const rows = await page.locator('#matches li').evaluateAll((ls) =>
    ls.map((l) => [l.querySelector('span').textContent, !!l.querySelector('.badge.new')]));
  assert.deepEqual(rows, [['Toy Story (1995)', false], ['Toy Story 4 (2019)', true]]);
  // The bundle's text term lifts the new sequel into the list of a session with the first film.
  await page.locator('#matches button').first().click();
  await recsFor(page, 1);
  const recNew = await page.locator('#recs li').evaluateAll((ls) =>
    ls.filter((l) => l.querySelector('.badge.new')).map((l) => l.querySelector('.title').textContent));
  assert.ok(recNew.includes('Toy Story 4 (2019)'), recNew.join(', '));
  assert.deepEqual(log.errors, []);
  await page.click('#clear');
  await page.close();
});

test('a second visit works with the server gone', async () => {
  // A server of its own, so it can be shut down: after one visit the service worker holds the
  // page's files and the worker holds the bundle in the Cache API.
  const own = await serve(SITE);
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(own.base + '/');
  await ready(page);
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
  await own.close();
  await page.reload();
  await ready(page);
  assert.match(await page.textContent('#status'), /cache/);
  await addFirst(page, 'star wars');
  await recsFor(page, 1);
  assert.equal((await recIds(page)).length, 10, 'recommendations with no server');
  await page.click('#clear');
  assert.deepEqual(errors, []);
  await ctx.close();
});


test('the keyboard keeps its place when movies are added, removed and cleared', async () => {
  const { page } = await open('/');
  await clearIfAny(page);
  const focused = () => page.evaluate(() => document.activeElement.id || document.activeElement.getAttribute('aria-label'));
  const titles = [];
  for (const q of ['star wars', 'fargo', 'toy story']) {
    await page.fill('#search', q);
    const first = page.locator('#matches button').first();
    await first.waitFor();
    titles.push((await first.getAttribute('aria-label')).replace(/^Add /, ''));
    await first.focus();
    await page.keyboard.press('Enter');
    assert.equal(await focused(), 'search', 'after adding, the search box');
  }
  await recsFor(page, 3);
  // Removing the middle movie leaves focus on the Remove button now in its place.
  await page.locator('#session li button').nth(1).focus();
  await page.keyboard.press('Enter');
  assert.deepEqual(await page.locator('#session li span').allTextContents(), [titles[0], titles[2]]);
  assert.equal(await focused(), `Remove ${titles[2]}`);
  // Removing the last row moves up a row; removing the only one goes back to the search box.
  await page.keyboard.press('Enter');
  assert.equal(await focused(), `Remove ${titles[0]}`);
  await page.keyboard.press('Enter');
  assert.equal(await page.locator('#session li').count(), 0);
  assert.equal(await focused(), 'search');
  await addFirst(page, 'fargo');
  await page.locator('#clear').focus();
  await page.keyboard.press('Enter');
  assert.equal(await page.locator('#session li').count(), 0);
  assert.equal(await focused(), 'search', 'after clearing, the search box');
  await page.close();
});

test('a bundle that fails to load is not cached and leaves the model in use working', async () => {
  // The site's manifest with one more entry: its first bundle cut in half, as a broken download is.
  const bundles = siteBundles();
  const whole = fs.readFileSync(bundles[0].path);
  const truncated = whole.subarray(0, whole.length >> 1);
  const manifest = { bundles: [...bundles.map(({ path: _, ...b }) => b),
    { name: 'truncated', file: 'truncated.gguf', bytes: truncated.length, sha256: '0123456789abcdef' }] };
  const own = await serve(SITE, {
    '/bundles/manifest.json': ['application/json', JSON.stringify(manifest)],
    '/bundles/truncated.gguf': ['application/octet-stream', truncated],
  });
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(own.base + '/');
  await ready(page);

  await page.selectOption('#model', 'truncated');
  await page.waitForSelector('#status.error', { timeout: 30_000 });
  const said = await page.textContent('#status');
  const escaped = bundles[0].name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // The bundle's own check refused it (not the network): the reason starts with "bundle:".
  assert.match(said, new RegExp(`^Could not load truncated \\(bundle: .+\\)\\. Still using ${escaped}\\.$`), said);
  assert.equal(await page.inputValue('#model'), bundles[0].name, 'the picker shows the model in use');
  assert.ok(await page.isEnabled('#model') && await page.isEnabled('#search'), 'the page stays usable');
  await addFirst(page, 'star wars');
  await recsFor(page, 1);
  assert.equal((await recIds(page)).length, 10, 'the model in use still answers');
  assert.deepEqual(await cachedPaths(page), [`/bundles/${bundles[0].file}`], 'only the bundle that loaded is cached');

  // Another model loads, and the error goes.
  await page.selectOption('#model', bundles[1].name);
  await switchedTo(page, bundles[1].name);
  assert.equal(await page.getAttribute('#status', 'class'), '');

  // A damaged cached copy is dropped and downloaded afresh, not failed on at every visit.
  await page.evaluate(async () => {
    const cache = await caches.open('llm-esr-bundles-v1');
    for (const req of await cache.keys()) await cache.put(req, new Response(new Uint8Array([71, 71, 85, 70, 3])));
  });
  await page.goto(own.base + '/');
  await ready(page);
  assert.match(await page.textContent('#status'), /^Ready: .*movies\.$/, 'downloaded again, not from the cache');
  await page.reload();
  await ready(page);
  assert.match(await page.textContent('#status'), /from this browser's cache/, 'the fresh copy was cached');
  await page.click('#clear');
  assert.deepEqual(errors, []);
  await ctx.close();
  await own.close();
});

test('bundles the manifest no longer lists are dropped from the cache, other sites\' kept', async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(server.base + '/');
  await ready(page);
  const current = `/bundles/${siteBundles()[0].file}`;
  assert.deepEqual(await cachedPaths(page), [current]);
  await page.evaluate(async () => {
    const cache = await caches.open('llm-esr-bundles-v1');
    for (const p of ['/bundles/renamed-since.gguf?v=1', '/another-site/bundles/theirs.gguf?v=1',
      '/bundles-old/theirs.gguf?v=1']) {
      await cache.put(new URL(p, location.href).href, new Response(new Uint8Array([1])));
    }
  });
  await page.reload();
  await ready(page);
  await page.waitForFunction(async () => !(await (await caches.open('llm-esr-bundles-v1')).keys())
    .some((r) => r.url.includes('renamed-since')), null, { timeout: 10_000 });
  assert.deepEqual(await cachedPaths(page), ['/another-site/bundles/theirs.gguf', '/bundles-old/theirs.gguf', current]);
  await ctx.close();
});

test('a site whose bundle list is missing or damaged says so', async () => {
  const cases = [
    ['{"bundles": ', /^Could not start: \.\/bundles\/manifest\.json is not JSON \(.+\)$/],
    ['{"bundles": []}', /^Could not start: \.\/bundles\/manifest\.json lists no bundles$/],
    ['{"bundles": [{"name": "x", "bytes": 1}]}', /^Could not start: .*an entry lacks name, file or bytes: \{"name":"x","bytes":1\}$/],
    ['{"bundles": [{"name": "x", "file": "../x.gguf", "bytes": 1}]}', /^Could not start: .*"\.\.\/x\.gguf" is not a plain file name$/],
    ['not found', /^Could not start: \.\/bundles\/manifest\.json: HTTP 404$/, 404],
  ];
  for (const [body, said, code] of cases) {
    const own = await serve(SITE, { '/bundles/manifest.json': ['application/json', body, code] });
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(own.base + '/');
    await page.waitForSelector('#status.error', { timeout: 30_000 });
    assert.match(await page.textContent('#status'), said, body);
    await ctx.close();
    await own.close();
  }
});

test('on a phone-sized screen nothing overflows, and every control has a name', async () => {
  const ctx = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  const page = await ctx.newPage();
  await page.goto(server.base + '/');
  await ready(page);
  await addFirst(page, 'star wars');
  await recsFor(page, 1);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the screen`);
  // Every button, input and select has an accessible name (label, aria-label or text).
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input, select')]
    .filter((e) => !(e.getAttribute('aria-label') || e.labels?.[0]?.textContent.trim() || e.textContent.trim()))
    .map((e) => e.outerHTML));
  assert.deepEqual(unnamed, []);
  // The list of recommendations is announced when it changes.
  assert.equal(await page.getAttribute('#recs', 'aria-live'), 'polite');
  await page.click('#clear');
  await ctx.close();
});
