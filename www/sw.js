// The service worker: keeps the page's own files (page, scripts, wasm, bundle list) so that a second
// visit works with no network at all; the bundles themselves are kept by worker.js in the Cache
// API. Network first, so a rebuilt site is picked up whenever the server answers; everything it
// does not list (bundles, the benchmark page's downloads) passes through untouched.
const SHELL = 'llm-esr-shell-v1';
const FILES = ['./', './index.html', './app.js', './client.js', './worker.js', './style.css',
  './favicon.svg', './pkg/llm_esr.js', './pkg/llm_esr_bg.wasm', './bundles/manifest.json'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(SHELL).then((c) => c.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  const scope = new URL(self.registration.scope).pathname;
  if (!url.pathname.startsWith(scope) || !FILES.includes(`./${url.pathname.slice(scope.length)}`)) return;
  event.respondWith(
    fetch(event.request)
      .then((resp) => {
        if (resp.ok) {
          const copy = resp.clone();
          event.waitUntil(caches.open(SHELL).then((c) => c.put(url.pathname, copy)));
        }
        return resp;
      })
      .catch(async () => (await caches.match(url.pathname)) ?? Response.error()),
  );
});
