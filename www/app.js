// The demo page: a worker loads the wasm recommender and a bundle, the visitor builds a session,
// and recommendations follow it. Every title is rendered with textContent, never as HTML.
import { RecommenderClient } from './client.js';

const $ = (id) => document.getElementById(id);
const status = $('status');
const session = [];
const client = new RecommenderClient();
let items = [];
let asked = 0;

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

async function renderRecs() {
  const list = $('recs');
  const ticket = ++asked;
  const forSession = session.join(',');
  if (session.length === 0) {
    list.replaceChildren(el('li', 'Add a movie to get recommendations.', 'hint'));
    list.dataset.for = '';
    $('latency').textContent = '';
    return;
  }
  let answer;
  try {
    answer = await client.recommend([...session], 10);
  } catch (e) {
    status.textContent = `Error: ${e.message}`;
    status.className = 'error';
    return;
  }
  // A newer session has been sent meanwhile: its answer will draw the list.
  if (ticket !== asked) return;
  const rows = answer.recs.map((r) => {
    const li = el('li');
    li.dataset.id = r.id;
    li.append(el('span', r.title, 'title'), el('span', r.score.toFixed(3), 'score'),
      el('span', r.tail ? 'tail' : 'head', `badge ${r.tail ? 'tail' : 'head'}`));
    return li;
  });
  list.replaceChildren(...rows);
  list.dataset.for = forSession;
  $('latency').textContent = `Computed on this device in ${answer.ms.toFixed(1)} ms.`;
}

function update() {
  renderMatches();
  renderSession();
  renderRecs();
}

async function main() {
  try {
    const manifest = await (await fetch('./bundles/manifest.json')).json();
    const entry = manifest.bundles[0];
    const loaded = await client.load(`./bundles/${entry.file}`, ({ loaded, total }) => {
      status.textContent = total
        ? `Loading ${entry.name}: ${Math.round((100 * loaded) / total)}% of ${(total / 1e6).toFixed(1)} MB`
        : `Loading ${entry.name}: ${(loaded / 1e6).toFixed(1)} MB`;
    });
    items = loaded.items.map((it) => ({ ...it, folded: fold(it.title) }));
    status.textContent = `Ready: ${entry.name}, ${items.length} movies${loaded.fromCache ? ' (from this browser\'s cache)' : ''}.`;
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
