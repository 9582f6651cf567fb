// The benchmark page: a fixed, seeded workload over every bundle on the site. It times what a
// visitor waits for (download, load, first recommendation, each `recommend`) and compares the wasm
// catalogue scorer with the same scoring written in plain JavaScript over typed arrays.
import init, { Recommender } from './pkg/llm_esr.js';

const LENGTHS = [1, 10, 50, 200];
const WARMUP = 5;
const CALLS = 200;
// Above this many items a call takes tens of milliseconds and the f32 copy of the tables that the
// JavaScript scorer needs would be hundreds of megabytes: fewer calls, no JavaScript baseline.
const LARGE = 200_000;
const K = 10;
const $ = (id) => document.getElementById(id);

/** A small seeded generator (mulberry32) so synthetic sessions are the same on every run. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function percentile(sorted, p) {
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)];
}

function stats(times) {
  const s = [...times].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { p50_ms: percentile(s, 50), p95_ms: percentile(s, 95), p99_ms: percentile(s, 99),
    mean_ms: mean, per_s: mean > 0 ? 1000 / mean : null };
}

/** Sessions per length: the dataset's workload when the bundle is of that dataset, else random. */
function sessionsFor(info, n, workload) {
  if (workload && info.dataset === workload.dataset && workload.items === n) {
    return Object.fromEntries(LENGTHS.map((l) => [l, workload.sessions[l] ?? []]));
  }
  const r = rng(7);
  return Object.fromEntries(LENGTHS.map((l) => [l, Array.from({ length: 32 },
    () => Array.from({ length: l }, () => 1 + Math.floor(r() * n)))]));
}

/** Catalogue scoring and top-k in plain JavaScript: what a page without wasm would run. */
function jsTopK(matrix, width, user, k) {
  const rows = matrix.length / width;
  const topIds = new Int32Array(k).fill(-1);
  const topScores = new Float32Array(k).fill(-Infinity);
  for (let i = 1; i < rows; i++) {
    let s = 0;
    const o = i * width;
    for (let j = 0; j < width; j++) s += matrix[o + j] * user[j];
    if (s > topScores[k - 1]) {
      let p = k - 1;
      while (p > 0 && topScores[p - 1] < s) { topScores[p] = topScores[p - 1]; topIds[p] = topIds[p - 1]; p--; }
      topScores[p] = s;
      topIds[p] = i;
    }
  }
  return topIds;
}

const tick = () => new Promise((ok) => setTimeout(ok, 0));

async function benchBundle(entry, workload, memory, report) {
  const t0 = performance.now();
  const resp = await fetch(`./bundles/${entry.file}`, { cache: 'no-store' });
  if (!resp.ok) throw new Error(`${entry.file}: HTTP ${resp.status}`);
  const bytes = new Uint8Array(await resp.arrayBuffer());
  const t1 = performance.now();
  const rec = new Recommender(bytes);
  const t2 = performance.now();
  const info = rec.info();
  const n = rec.numItems;
  const sessions = sessionsFor(info, n, workload);
  const first = sessions[10][0] ?? sessions[1][0];
  const t3 = performance.now();
  rec.recommend(first, K);
  const firstMs = performance.now() - t3;
  const base = { bundle: entry.name, quant: info.tables, encoder: info.encoder, items: n,
    bytes: bytes.length, download_ms: t1 - t0, load_ms: t2 - t1, first_ms: firstMs };
  const rows = [];
  const calls = n > LARGE ? CALLS / 4 : CALLS;
  for (const len of LENGTHS) {
    const ss = sessions[len];
    if (!ss.length) continue;
    for (let i = 0; i < WARMUP; i++) rec.recommend(ss[i % ss.length], K);
    const times = [];
    for (let i = 0; i < calls; i++) {
      const s = ss[i % ss.length];
      const a = performance.now();
      rec.recommend(s, K);
      times.push(performance.now() - a);
    }
    rows.push({ ...base, what: 'recommend', session_len: len, ...stats(times),
      wasm_memory_bytes: memory.buffer.byteLength });
    report(rows.at(-1));
    await tick();
  }
  if (n > LARGE) {
    rec.free();
    return { rows, scorersAgree: true };
  }
  // The scorer alone, wasm against plain JavaScript, on the same users (sessions of 50).
  const users = (sessions[50].length ? sessions[50] : sessions[10]).slice(0, 16).map((s) => rec.userVector(s));
  const matrix = rec.itemMatrix();
  const width = users[0].length;
  // Quantized tables are scored against the quantized query; the JavaScript scorer is given it
  // ready-made (the wasm one quantizes it on every call).
  const jsUsers = QUANTIZED.has(info.tables) ? users.map(quantizedQuery) : users;
  for (const [what, run] of [
    ['scorer-wasm', (i) => rec.topKForUser(users[i], K)],
    ['scorer-js', (i) => jsTopK(matrix, width, jsUsers[i], K)],
  ]) {
    for (let i = 0; i < WARMUP; i++) run(i % users.length);
    const times = [];
    for (let i = 0; i < CALLS; i++) {
      const a = performance.now();
      run(i % users.length);
      times.push(performance.now() - a);
    }
    rows.push({ ...base, what, session_len: 50, ...stats(times), wasm_memory_bytes: memory.buffer.byteLength });
    report(rows.at(-1));
    await tick();
  }
  // The two scorers must agree before their times mean anything.
  const same = users.every((u, n) => {
    const q = jsUsers[n];
    const a = Array.from(rec.topKForUser(u, K));
    const b = Array.from(jsTopK(matrix, width, q, K));
    return a.every((id, i) => id === b[i] || Math.abs(
      dot(matrix, width, id, q) - dot(matrix, width, b[i], q)) < 1e-4);
  });
  rec.free();
  return { rows, scorersAgree: same };
}

const QUANTIZED = new Set(['q8', 'q4']);

/** `u` as the wasm scorer multiplies it for Q8_0/Q4_0 tables (`QueryQ8` in src/kernels/dot.rs):
 * blocks of 32, scale max|x| / 127, values rounded half away from zero. */
function quantizedQuery(u) {
  const out = new Float32Array(u.length);
  for (let b = 0; b < u.length; b += 32) {
    let amax = 0;
    for (let j = b; j < b + 32; j++) amax = Math.max(amax, Math.abs(u[j]));
    const d = Math.fround(amax / 127);
    const inv = d === 0 ? 0 : Math.fround(1 / d);
    for (let j = b; j < b + 32; j++) {
      const x = Math.fround(u[j] * inv);
      out[j] = Math.min(127, Math.max(-127, Math.sign(x) * Math.round(Math.abs(x)))) * d;
    }
  }
  return out;
}

function dot(matrix, width, id, u) {
  let s = 0;
  for (let j = 0; j < width; j++) s += matrix[id * width + j] * u[j];
  return s;
}

const fmt = (v, d = 3) => (v == null ? '' : typeof v === 'number' ? v.toFixed(d) : String(v));

function addRow(r) {
  const tr = document.createElement('tr');
  for (const v of [r.bundle, r.quant, r.items, r.what, r.session_len, fmt(r.p50_ms), fmt(r.p95_ms),
    fmt(r.p99_ms), fmt(r.per_s, 0), fmt(r.load_ms, 1), fmt(r.first_ms, 2), r.bytes,
    `${(r.wasm_memory_bytes / 1048576).toFixed(1)} MiB`]) {
    const td = document.createElement('td');
    td.textContent = String(v);
    tr.append(td);
  }
  $('results').tBodies[0].append(tr);
}

/** p50 of `recommend` by session length, one bar group per bundle, drawn with DOM elements. */
function drawChart(rows) {
  const chart = $('chart');
  chart.replaceChildren();
  const rec = rows.filter((r) => r.what === 'recommend');
  const max = Math.max(...rec.map((r) => r.p50_ms), 1e-6);
  for (const r of rec) {
    const line = document.createElement('div');
    line.className = 'bar-line';
    const label = document.createElement('span');
    label.textContent = `${r.bundle} · ${r.session_len} items: ${r.p50_ms.toFixed(3)} ms`;
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = `${(100 * r.p50_ms) / max}%`;
    line.append(label, bar);
    chart.append(line);
  }
}

export async function run() {
  const status = $('status');
  $('run').disabled = true;
  $('results').tBodies[0].replaceChildren();
  try {
    const wasm = await init();
    const manifest = await (await fetch('./bundles/manifest.json', { cache: 'no-store' })).json();
    const wl = await fetch('./bundles/workload.json', { cache: 'no-store' });
    const workload = wl.ok ? await wl.json() : null;
    const rows = [];
    let agree = true;
    for (const entry of manifest.bundles) {
      status.textContent = `Running ${entry.name}…`;
      const out = await benchBundle(entry, workload, wasm.memory, addRow);
      rows.push(...out.rows);
      agree &&= out.scorersAgree;
    }
    drawChart(rows);
    const result = {
      userAgent: navigator.userAgent,
      crossOriginIsolated: self.crossOriginIsolated,
      cores: navigator.hardwareConcurrency,
      workload: workload ? { dataset: workload.dataset, seed: workload.seed } : null,
      calls: CALLS, callsLarge: CALLS / 4, largeFrom: LARGE, k: K, scorersAgree: agree, rows,
    };
    $('json').textContent = JSON.stringify(result, null, 2);
    status.textContent = `Done: ${rows.length} rows.`;
    status.dataset.done = 'true';
    window.benchResult = result;
  } catch (e) {
    status.textContent = `Benchmark failed: ${e.message ?? e}`;
    status.className = 'error';
    window.benchResult = { error: String(e.message ?? e) };
  } finally {
    $('run').disabled = false;
  }
}

$('run').addEventListener('click', run);
if (new URLSearchParams(location.search).has('auto')) run();
