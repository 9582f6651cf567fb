// The demo page: a worker loads the wasm recommender and a bundle, the visitor builds a session,
// and recommendations follow it. The session lives in localStorage only. Every title is rendered
// with textContent, never as HTML.
import { RecommenderClient } from './client.js';

const $ = (id) => document.getElementById(id);
const status = $('status');
const client = new RecommenderClient();
const session = [];
let items = [];
let dataset = '';
let asked = 0;
// The manifest entry of the model in use; null until one has loaded.
let current = null;
// Items shown since the page loaded, for the coverage figure.
const shown = new Set();
// How long the model picker must rest on a choice before that model loads.
const PICK_SETTLE_MS = 400;

const fold = (s) => s.normalize('NFD').replace(/\p{Diacritic}/gu, '').toLowerCase();
const storageKey = () => `llm-esr:session:${dataset}:${items.length}`;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function save() {
  try {
    if (session.length) localStorage.setItem(storageKey(), JSON.stringify(session));
    else localStorage.removeItem(storageKey());
  } catch { /* storage may be off (private mode); the session then lasts for the page only */ }
}

function restore() {
  session.length = 0;
  try {
    const saved = JSON.parse(localStorage.getItem(storageKey()) ?? '[]');
    if (Array.isArray(saved)) {
      session.push(...saved.filter((id) => Number.isInteger(id) && id >= 1 && id <= items.length));
    }
  } catch { /* a damaged entry is dropped */ }
}

function matches() {
  const q = fold($('search').value.trim());
  if (!q) return [];
  return items.filter((it) => it.folded.includes(q) && !session.includes(it.id)).slice(0, 15);
}

// Adding or removing re-renders the lists and takes the pressed button away: focus moves on to where
// the keyboard user goes next, not back to the top of the page.
function add(id) {
  // A double press, or a row drawn for a list that has since changed, must not add it twice.
  if (!items[id - 1] || session.includes(id)) return;
  session.push(id);
  update();
  $('search').focus();
}

function removeAt(i) {
  session.splice(i, 1);
  update();
  const left = $('session').querySelectorAll('button');
  (left[Math.min(i, left.length - 1)] ?? $('search')).focus();
}

// Items added after training, from their text alone: a visitor sees new arrivals recommended.
function newBadge() {
  const b = el('span', 'new', 'badge new');
  b.title = 'New: placed from its description, not learned from interactions';
  return b;
}

function renderMatches() {
  const list = $('matches');
  list.replaceChildren();
  for (const it of matches()) {
    const li = el('li');
    const b = el('button', 'Add');
    b.type = 'button';
    b.setAttribute('aria-label', `Add ${it.title}`);
    b.addEventListener('click', () => add(it.id));
    li.append(b, ' ', el('span', it.title));
    if (it.new) li.append(' ', newBadge());
    list.append(li);
  }
}

function renderSession() {
  const list = $('session');
  list.replaceChildren();
  session.forEach((id, i) => {
    const li = el('li');
    const b = el('button', 'Remove');
    b.type = 'button';
    b.setAttribute('aria-label', `Remove ${items[id - 1].title}`);
    b.addEventListener('click', () => removeAt(i));
    li.append(el('span', items[id - 1].title), ' ', b);
    list.append(li);
  });
  $('clear').disabled = session.length === 0;
}

async function renderRecs() {
  const list = $('recs');
  const ticket = ++asked;
  const forSession = session.join(',');
  const tailWeight = Number($('tail').value);
  if (session.length === 0) {
    list.replaceChildren(el('li', 'Add a movie to get recommendations.', 'hint'));
    list.dataset.for = '';
    $('latency').textContent = '';
    $('exposure').textContent = '';
    return;
  }
  let answer;
  try {
    answer = await client.recommend([...session], 10, tailWeight);
  } catch (e) {
    status.textContent = `Error: ${e.message}`;
    status.className = 'error';
    return;
  }
  // A newer request has been sent meanwhile: its answer will draw the list.
  if (ticket !== asked) return;
  const rows = answer.recs.map((r) => {
    const li = el('li');
    li.dataset.id = r.id;
    li.dataset.tail = r.tail;
    const because = r.because ? el('span', `because you added ${items[r.because - 1].title}`, 'because') : '';
    // Seen it already: one press puts it in the session, as the search would.
    const b = el('button', 'Add', 'add');
    b.type = 'button';
    b.setAttribute('aria-label', `Add ${r.title}`);
    b.addEventListener('click', () => add(r.id));
    li.append(b, ' ', el('span', r.title, 'title'), el('span', r.score.toFixed(3), 'score'),
      el('span', r.tail ? 'tail' : 'head', `badge ${r.tail ? 'tail' : 'head'}`));
    if (r.new) li.append(newBadge());
    li.append(because);
    shown.add(r.id);
    return li;
  });
  list.replaceChildren(...rows);
  list.dataset.for = forSession;
  list.dataset.weight = String(tailWeight);
  const tail = answer.recs.filter((r) => r.tail).length;
  $('exposure').textContent = `Tail items in this list: ${tail} of ${answer.recs.length}. ` +
    `Shown so far: ${shown.size} different movies, ${((100 * shown.size) / items.length).toFixed(1)}% of the catalogue.`;
  $('latency').textContent = `Computed on this device in ${answer.ms.toFixed(1)} ms.`;
}

function update() {
  save();
  renderMatches();
  renderSession();
  renderRecs();
}

// Where the site's bundles live; one URL per manifest entry, shared by loading and the cache sweep.
const bundlesDir = new URL('./bundles/', location.href).href;
const bundleHref = (entry) => new URL(entry.file, bundlesDir).href;

/** While a bundle loads, nothing that changes the session or asks for recommendations can be used:
 *  an answer must never mix one model's ids with another's titles. */
function busy(on) {
  status.dataset.ready = String(!on && current !== null);
  $('model').disabled = on;
  $('search').disabled = on || current === null;
  document.querySelector('main').inert = on || current === null;
}

/** Switches to the bundle of manifest `entry`. One that fails to load leaves the model in use
 *  (the worker keeps it) and the page working, with the reason in the status line. */
async function load(entry) {
  status.className = '';
  busy(true);
  let loaded;
  try {
    // The digest in the URL keys the Cache API entry: a rebuilt bundle is a new entry.
    loaded = await client.load(`${bundleHref(entry)}?v=${entry.sha256 ?? entry.bytes}`, ({ loaded, total }) => {
      status.textContent = total
        ? `Loading ${entry.name}: ${Math.round((100 * loaded) / total)}% of ${(total / 1e6).toFixed(1)} MB`
        : `Loading ${entry.name}: ${(loaded / 1e6).toFixed(1)} MB`;
    });
  } catch (e) {
    status.textContent = `Could not load ${entry.name} (${e.message}).` +
      (current ? ` Still using ${current.name}.` : ' Pick another model.');
    status.className = 'error';
    $('model').value = current?.name ?? entry.name;
    busy(false);
    return;
  }
  const switched = current !== entry;
  current = entry;
  items = loaded.items.map((it) => ({ ...it, folded: fold(it.title) }));
  dataset = loaded.info.dataset;
  shown.clear();
  // The last model's list goes at once: its ids need not name the same movies in this catalogue.
  if (switched) $('recs').replaceChildren();
  restore();
  const how = `${loaded.info.model.backbone} ${loaded.info.model.semantic ? 'LLM-ESR' : 'base'}, ${loaded.info.tables} tables`;
  status.textContent = `Ready: ${entry.name} (${how}), ${items.length} movies` +
    `${loaded.fromCache ? ', from this browser\'s cache' : ''}.`;
  status.dataset.bundle = entry.name;
  busy(false);
  update();
}

/** Installs the service worker that keeps the page's files for offline visits, and waits (briefly)
 *  until it is active, so its downloads happen before the bundle's and none after. */
async function offlineReady() {
  if (!('serviceWorker' in navigator)) return;
  try {
    await navigator.serviceWorker.register('./sw.js');
    await Promise.race([navigator.serviceWorker.ready, new Promise((ok) => setTimeout(ok, 5000))]);
  } catch { /* no offline support (e.g. an insecure origin); the page works online */ }
}

/** The site's list of bundles, checked: a site deployed without bundles, or with a damaged list,
 *  says so instead of failing on a missing field. */
async function readManifest() {
  const url = './bundles/manifest.json';
  const resp = await fetch(url);
  if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status}`);
  let manifest;
  try {
    manifest = await resp.json();
  } catch (e) {
    throw new Error(`${url} is not JSON (${e.message})`);
  }
  const bundles = manifest?.bundles;
  if (!Array.isArray(bundles) || bundles.length === 0) throw new Error(`${url} lists no bundles`);
  const bad = bundles.find((b) => typeof b?.name !== 'string' || typeof b?.file !== 'string'
    || !Number.isFinite(b?.bytes));
  if (bad !== undefined) throw new Error(`${url}: an entry lacks name, file or bytes: ${JSON.stringify(bad)}`);
  // A bundle is a file beside the manifest: no path, query, fragment or scheme to resolve elsewhere.
  const away = bundles.find((b) => !/^[^/\\?#:]+$/.test(b.file));
  if (away !== undefined) throw new Error(`${url}: "${away.file}" is not a plain file name`);
  return manifest;
}

async function main() {
  try {
    await offlineReady();
    const manifest = await readManifest();
    client.prune(bundlesDir, manifest.bundles.map(bundleHref))
      .catch(() => { /* a sweep that fails only leaves old copies behind */ });
    const picker = $('model');
    for (const b of manifest.bundles) {
      const o = el('option', `${b.name} (${(b.bytes / 1e6).toFixed(1)} MB)`);
      o.value = b.name;
      picker.append(o);
    }
    const wanted = new URLSearchParams(location.search).get('bundle');
    const first = manifest.bundles.find((b) => b.name === wanted) ?? manifest.bundles[0];
    picker.value = first.name;
    // Arrow keys on a closed <select> fire `change` for every option passed; loading waits until
    // the choice has settled, so stepping through the list loads one model, not each on the way.
    let settle;
    picker.addEventListener('change', () => {
      clearTimeout(settle);
      settle = setTimeout(async () => {
        const entry = manifest.bundles.find((b) => b.name === picker.value);
        if (entry === current) return;
        try {
          await load(entry);
        } catch (e) {
          status.textContent = `Error: ${e.message}`;
          status.className = 'error';
          busy(false);
        }
        picker.focus();
      }, PICK_SETTLE_MS);
    });
    $('search').addEventListener('input', renderMatches);
    $('search').addEventListener('keydown', (e) => {
      if (e.key !== 'Enter') return;
      const first = matches()[0];
      if (first) { e.preventDefault(); add(first.id); }
    });
    $('clear').addEventListener('click', () => { session.length = 0; shown.clear(); update(); $('search').focus(); });
    $('tail').addEventListener('input', () => {
      $('tail-value').textContent = $('tail').value;
      renderRecs();
    });
    await load(first);
  } catch (e) {
    status.textContent = `Could not start: ${e.message ?? e}`;
    status.className = 'error';
  }
}

main();
