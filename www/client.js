// The page's handle on the recommender worker: each call is a message with an id and a promise
// for its answer; loading reports progress through a callback.
export class RecommenderClient {
  constructor(url = './worker.js') {
    this.worker = new Worker(new URL(url, import.meta.url), { type: 'module' });
    this.pending = new Map();
    this.next = 1;
    this.worker.onmessage = ({ data }) => {
      const p = this.pending.get(data.id);
      if (!p) return;
      if (data.progress) { p.onProgress?.(data.progress); return; }
      this.pending.delete(data.id);
      if (data.ok) p.resolve(data.result); else p.reject(new Error(data.error));
    };
    this.worker.onerror = (e) => {
      for (const p of this.pending.values()) p.reject(new Error(e.message || 'worker failed'));
      this.pending.clear();
    };
  }

  call(op, args, onProgress) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ id, op, args });
    });
  }

  /** Loads a bundle by URL: `{info, items, fromCache}`; a bundle that fails to load
   *  leaves the one loaded before in use. */
  load(url, onProgress) { return this.call('load', { url: new URL(url, location.href).href }, onProgress); }

  /** Drops cached bundles under `dir` that `keep` (absolute URLs, no query) does not list; resolves
   *  to how many were dropped. */
  prune(dir, keep) { return this.call('prune', { dir, keep }); }

  /** `{recs, ms}` for a session of item ids, oldest first; `tailWeight` > 0 favours the tail. */
  recommend(session, k = 10, tailWeight = 0) { return this.call('recommend', { session, k, tailWeight }); }
}
