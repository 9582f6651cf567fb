// The demo page: loads the wasm recommender and a bundle, lets a visitor build a session, and shows
// recommendations. Every title is rendered with textContent, never as HTML.
import init, { Recommender } from './pkg/llm_esr.js';

const $ = (id) => document.getElementById(id);
const status = $('status');
const session = [];
let rec = null;
let items = [];

const fold = (s) => s.normalize('NFD').replace(/\p{Diacritic}/gu, '').toLowerCase();

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function renderMatches() {
  const q = fold($('search').value.trim());
  const list = $('matches');
  list.replaceChildren();
  if (!q) return;
  const hits = items.filter((it) => it.folded.includes(q) && !session.includes(it.id)).slice(0, 15);
  for (const it of hits) {
    const li = el('li');
    const b = el('button', 'Add');
    b.type = 'button';
    b.setAttribute('aria-label', `Add ${it.title}`);
    b.addEventListener('click', () => { session.push(it.id); update(); });
    li.append(b, ' ', el('span', it.title));
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
    b.addEventListener('click', () => { session.splice(i, 1); update(); });
    li.append(el('span', items[id - 1].title), ' ', b);
    list.append(li);
  });
  $('clear').disabled = session.length === 0;
}

function renderRecs() {
  const list = $('recs');
  list.replaceChildren();
  $('latency').textContent = '';
  if (session.length === 0) {
    list.append(el('li', 'Add a movie to get recommendations.', 'hint'));
    return;
  }
  let recs;
  try {
    recs = rec.recommend(session, 10);
  } catch (e) {
    status.textContent = `Error: ${e.message}`;
    status.className = 'error';
    return;
  }
  const ms = rec.lastLatencyMs;
  for (const r of recs) {
    const li = el('li');
    li.dataset.id = r.id;
    li.append(el('span', r.title, 'title'), el('span', r.score.toFixed(3), 'score'),
      el('span', r.tail ? 'tail' : 'head', `badge ${r.tail ? 'tail' : 'head'}`));
    list.append(li);
  }
  $('latency').textContent = `Computed on this device in ${ms.toFixed(1)} ms.`;
}

function update() {
  renderMatches();
  renderSession();
  renderRecs();
}

async function main() {
  try {
    await init();
    const manifest = await (await fetch('./bundles/manifest.json')).json();
    const entry = manifest.bundles[0];
    const resp = await fetch(`./bundles/${entry.file}`);
    if (!resp.ok) throw new Error(`bundle ${entry.file}: HTTP ${resp.status}`);
    rec = new Recommender(new Uint8Array(await resp.arrayBuffer()));
    items = rec.items().map((it) => ({ ...it, folded: fold(it.title) }));
    status.textContent = `Ready: ${entry.name}, ${items.length} movies.`;
    status.dataset.ready = 'true';
    $('search').disabled = false;
    $('search').addEventListener('input', renderMatches);
    $('clear').addEventListener('click', () => { session.length = 0; update(); });
    update();
  } catch (e) {
    status.textContent = `Could not start: ${e.message ?? e}`;
    status.className = 'error';
  }
}

main();
