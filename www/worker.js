// The recommender's home: a module worker that owns the wasm instance and the loaded bundle, so
// the page never blocks on loading or scoring. Bundles are fetched once with progress and kept in
// the Cache API; a second visit loads them from there, with no network.
import init, { Recommender } from './pkg/llm_esr.js';

const CACHE = 'llm-esr-bundles-v1';
let ready = null;
let rec = null;

async function readWithProgress(resp, report) {
  const total = Number(resp.headers.get('content-length')) || 0;
  if (!resp.body) return new Uint8Array(await resp.arrayBuffer());
  const reader = resp.body.getReader();
  const parts = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.length;
    report(loaded, total);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const p of parts) { bytes.set(p, at); at += p.length; }
  return bytes;
}

/** Keeps `bytes` under `url` for the next visit and drops older versions of the same file. */
async function remember(cache, url, bytes) {
  await cache.put(url, new Response(bytes, {
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) },
  }));
  const path = new URL(url).pathname;
  for (const req of await cache.keys()) {
    if (req.url !== url && new URL(req.url).pathname === path) await cache.delete(req);
  }
}

/** A recommender for the bundle at `url`, from the Cache API when it holds a copy that loads, else
 *  from the network. Only a bundle that loaded is cached: a truncated or corrupt download must not
 *  come back on every later visit, and a damaged cached copy is dropped and downloaded afresh. */
async function openBundle(url, report) {
  const cache = 'caches' in self ? await caches.open(CACHE) : null;
  const hit = cache ? await cache.match(url) : undefined;
  if (hit) {
    const bytes = new Uint8Array(await hit.arrayBuffer());
    report(bytes.length, bytes.length);
    try {
      return { next: new Recommender(bytes), fromCache: true };
    } catch {
      await cache.delete(url);
    }
  }
  const resp = await fetch(url);
  if (!resp.ok) throw new Error(`bundle ${url}: HTTP ${resp.status}`);
  const bytes = await readWithProgress(resp, report);
  const next = new Recommender(bytes);
  // A full quota costs the next visit a download, not this one its model.
  if (cache) await remember(cache, url, bytes).catch(() => {});
  return { next, fromCache: false };
}

const ops = {
  async load({ url }, id) {
    ready ??= init();
    await ready;
    const { next, fromCache } = await openBundle(url, (loaded, total) =>
      self.postMessage({ id, progress: { loaded, total } }));
    // The model in use is replaced only once the new one has loaded and described itself: a bad
    // bundle leaves it working.
    let answer;
    try {
      answer = { info: next.info(), items: next.items(), fromCache };
    } catch (e) {
      next.free();
      throw e;
    }
    rec?.free();
    rec = next;
    return answer;
  },
  /** Drops cached bundles of this site that its manifest no longer lists (`keep`: their URLs
   *  without the version query), so a redeploy that renames bundles does not leave the old ones
   *  filling the visitor's storage. Other sites on the origin keep theirs: only `dir` is swept. */
  async prune({ dir, keep }) {
    if (!('caches' in self)) return 0;
    const cache = await caches.open(CACHE);
    const wanted = new Set(keep);
    let dropped = 0;
    for (const req of await cache.keys()) {
      const u = new URL(req.url);
      const bare = u.origin + u.pathname;
      if (bare.startsWith(dir) && !wanted.has(bare)) {
        await cache.delete(req);
        dropped += 1;
      }
    }
    return dropped;
  },
  recommend({ session, k, tailWeight }) {
    if (!rec) throw new Error('no bundle loaded');
    const recs = rec.recommend(session, k, false, tailWeight ?? 0);
    return { recs, ms: rec.lastLatencyMs };
  },
};

self.onmessage = async ({ data }) => {
  const { id, op, args } = data;
  try {
    if (!ops[op]) throw new Error(`unknown operation ${op}`);
    self.postMessage({ id, ok: true, result: await ops[op](args, id) });
  } catch (e) {
    self.postMessage({ id, ok: false, error: e?.message ?? String(e) });
  }
};
