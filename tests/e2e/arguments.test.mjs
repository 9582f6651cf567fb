// Every argument a JavaScript caller hands the wasm Recommender is checked, in headless Chromium:
// whole numbers where an integer is meant, finite ones where a float is, within range, with an
// error that names the argument and the value given. A k beyond the catalogue means every
// candidate. Random JS-like values for every exported method never trap and never return NaN,
// and a panic, should one happen, is thrown as an Error with its message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SITE, serve, launch, siteBundle, siteBundles } from './harness.mjs';

let server, browser, page, n, width;
const bundleUrl = '/bundles/' + siteBundle().split('/').pop();

/** A blank page of the site with the module loaded and `window.rec` built from the test bundle. */
async function openPage() {
  const p = await browser.newPage();
  const errors = [];
  p.on('pageerror', (e) => errors.push(e.message));
  await p.goto(server.base + '/blank.html');
  await p.evaluate(async (url) => {
    const mod = await import('/pkg/llm_esr.js');
    await mod.default();
    window.mod = mod;
    window.bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    window.rec = new mod.Recommender(window.bytes);
  }, bundleUrl);
  return { p, errors };
}

before(async () => {
  server = await serve(SITE, { '/blank.html': ['text/html', '<!doctype html><title>t</title>'] });
  browser = await launch();
  ({ p: page } = await openPage());
  n = await page.evaluate(() => window.rec.numItems);
  width = await page.evaluate(() => window.rec.userVector([1]).length);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** Runs `code` (a function body over rec, mod, bytes, n, width) in the page: its value, or the
 *  error it threw as `Class: message`. */
const run = (code) => page.evaluate(([code, n, width]) => {
  try {
    const v = new Function('rec', 'mod', 'bytes', 'n', 'width', `return (${code});`)(
      window.rec, window.mod, window.bytes, n, width);
    return { value: v instanceof Float32Array || v instanceof Uint32Array ? Array.from(v) : v };
  } catch (e) {
    return { error: `${e.constructor.name}: ${e.message}` };
  }
}, [code, n, width]);

async function refused(code, message) {
  const got = await run(code);
  assert.ok(got.error, `${code} should throw, returned ${JSON.stringify(got.value)?.slice(0, 80)}`);
  assert.equal(got.error, `Error: ${message}`, code);
}

test('k: a whole number from 1 up; beyond the catalogue is every candidate', async () => {
  for (const k of ['1e9', '1e300', 'Number.MAX_SAFE_INTEGER', '2 ** 32', 'n + 1']) {
    const got = await run(`rec.recommend([1, 2, 3], ${k})`);
    assert.ok(!got.error, `k = ${k}: ${got.error}`);
    assert.equal(got.value.length, n - 3, `k = ${k} returns every other item`);
    assert.ok(got.value.every((r, i) => i === 0 || got.value[i - 1].score >= r.score), `k = ${k} sorted`);
  }
  // With a tail weight the re-ranked pool is every candidate too.
  assert.equal((await run('rec.recommend([1, 2, 3], 1e9, false, 0.5)')).value.length, n - 3);
  assert.equal((await run('rec.topKForUser(rec.userVector([1]), 1e9)')).value.length, n);
  assert.equal((await run('rec.recommend([1, 2, 3], 7)')).value.length, 7);
  for (const [k, shown] of [['-1', '-1'], ['1.5', '1.5'], ['NaN', 'NaN'], ['Infinity', 'Infinity'],
    ['-Infinity', '-Infinity'], ['"10"', '"10"'], ['null', 'null'], ['undefined', 'undefined'],
    ['[10]', '[10]'], ['{}', '{}'], ['10n', 'a bigint'], ['true', 'true']]) {
    await refused(`rec.recommend([1, 2, 3], ${k})`, `k must be a positive integer, got ${shown}`);
    await refused(`rec.topKForUser(rec.userVector([1]), ${k})`, `k must be a positive integer, got ${shown}`);
  }
  await refused('rec.recommend([1, 2, 3])', 'k must be a positive integer, got undefined');
  for (const k of ['0', '-0']) {
    await refused(`rec.recommend([1, 2, 3], ${k})`, 'request: k must be at least 1');
    await refused(`rec.topKForUser(rec.userVector([1]), ${k})`, 'request: k must be at least 1');
  }
});

test('item ids, in sessions and in item(): non-negative integers of the catalogue', async () => {
  for (const [id, shown] of [['-1', '-1'], ['1.5', '1.5'], ['NaN', 'NaN'], ['Infinity', 'Infinity'],
    ['-Infinity', '-Infinity'], ['-0.5', '-0.5']]) {
    await refused(`rec.item(${id})`, `item id ${shown} is not a non-negative integer`);
    await refused(`rec.recommend([1, ${id}], 5)`, `item id ${shown} is not a non-negative integer`);
    await refused(`rec.userVector([${id}])`, `item id ${shown} is not a non-negative integer`);
  }
  for (const [id, shown] of [['"x"', '"x"'], ['"1"', '"1"'], ['undefined', 'undefined'], ['null', 'null'],
    ['[1]', '[1]'], ['{}', '{}'], ['true', 'true'], ['1n', 'a bigint']]) {
    await refused(`rec.item(${id})`, `item id ${shown} is not a non-negative integer`);
  }
  for (const [id, shown] of [['0', '0'], ['n + 1', String(n + 1)], ['2 ** 32 - 1', '4294967295'],
    ['2 ** 32', '4294967296'], ['1e300', '1e+300']]) {
    const message = `request: unknown item id ${shown}: ids run from 1 to ${n}`;
    await refused(`rec.item(${id})`, message);
    await refused(`rec.recommend([${id}], 5)`, message);
  }
  assert.equal((await run('rec.item(1)')).value.id, 1);
  assert.equal((await run('rec.item(n)')).value.id, n);
  assert.equal((await run('rec.item(-0)')).error, `Error: request: unknown item id 0: ids run from 1 to ${n}`);
});

test('includeSession is a boolean and tailWeight a finite number of at least 0', async () => {
  for (const [v, shown] of [['1', '1'], ['0', '0'], ['"yes"', '"yes"'], ['NaN', 'NaN'], ['[]', '[]']]) {
    await refused(`rec.recommend([1, 2], 5, ${v})`, `includeSession must be true or false, got ${shown}`);
  }
  const withSession = await run('rec.recommend([1, 2], n, true)');
  assert.equal(withSession.value.length, n);
  for (const v of ['undefined', 'null', 'false']) {
    assert.equal((await run(`rec.recommend([1, 2], n, ${v})`)).value.length, n - 2, `includeSession ${v}`);
  }
  for (const [w, shown] of [['-1', '-1'], ['-0.5', '-0.5'], ['NaN', 'NaN'], ['Infinity', 'inf'],
    ['-Infinity', '-inf']]) {
    await refused(`rec.recommend([1, 2], 5, false, ${w})`,
      `request: tail weight must be a finite number of at least 0, got ${shown}`);
  }
  for (const [w, shown] of [['"0.5"', '"0.5"'], ['true', 'true'], ['[1]', '[1]'], ['{}', '{}']]) {
    await refused(`rec.recommend([1, 2], 5, false, ${w})`,
      `tail weight must be a finite number of at least 0, got ${shown}`);
  }
  await refused('rec.recommend([1, 2], 5, false, 1e300)', 'tail weight is 1e+300, beyond the float32 range (±3.4e38)');
  for (const w of ['undefined', 'null', '0', '0.5', '1e30']) {
    const got = await run(`rec.recommend([1, 2], 5, false, ${w})`);
    assert.equal(got.value?.length, 5, `tail weight ${w}: ${got.error}`);
  }
});

test('topKForUser: a vector of the model width of finite numbers', async () => {
  const ok = await run('rec.topKForUser(Array.from(rec.userVector([1, 2])), 5)');
  assert.deepEqual(ok.value, (await run('rec.recommend([1, 2], 7, true)')).value.map((r) => r.id).slice(0, 5));
  assert.deepEqual((await run('rec.topKForUser(new Float64Array(rec.userVector([1, 2])), 5)')).value, ok.value);
  await refused('rec.topKForUser(new Float32Array(3), 5)', `request: user vector has 3 values, the model's has ${width}`);
  await refused('rec.topKForUser([], 5)', `request: user vector has 0 values, the model's has ${width}`);
  await refused('rec.topKForUser(new Float32Array(width + 1), 5)',
    `request: user vector has ${width + 1} values, the model's has ${width}`);
  for (const [v, shown] of [['NaN', 'NaN'], ['Infinity', 'inf'], ['-Infinity', '-inf']]) {
    await refused(`(() => { const u = new Float32Array(width); u[5] = ${v}; return rec.topKForUser(u, 5); })()`,
      `request: user vector[5] must be a finite number, got ${shown}`);
    await refused(`(() => { const u = Array(width).fill(0); u[5] = ${v}; return rec.topKForUser(u, 5); })()`,
      `request: user vector[5] must be a finite number, got ${shown}`);
  }
  for (const [v, shown] of [['"x"', '"x"'], ['null', 'null'], ['undefined', 'undefined'], ['[0]', '[0]']]) {
    await refused(`(() => { const u = Array(width).fill(0); u[2] = ${v}; return rec.topKForUser(u, 5); })()`,
      `user vector[2] must be a finite number, got ${shown}`);
  }
  await refused('(() => { const u = Array(width).fill(0); u[1] = 1e300; return rec.topKForUser(u, 5); })()',
    'user vector[1] is 1e+300, beyond the float32 range (±3.4e38)');
  for (const [v, shown] of [['null', 'null'], ['undefined', 'undefined'], ['5', '5'], ['"1,2"', '"1,2"'],
    ['new Uint8Array(4)', '{"0":0,"1":0,"2":0,"3":0}']]) {
    await refused(`rec.topKForUser(${v}, 5)`, `user vector must be an array of numbers or a Float32Array, got ${shown}`);
  }
});

test('bundle bytes: a Uint8Array or an ArrayBuffer', async () => {
  assert.equal((await run('new mod.Recommender(bytes.buffer.slice(0)).numItems')).value, n);
  for (const [v, shown] of [['null', 'null'], ['undefined', 'undefined'], ['"GGUF"', '"GGUF"'], ['7', '7'],
    ['[71, 71, 85, 70]', '[71,71,85,70]'], ['{ length: 3e9 }', '{"length":3000000000}']]) {
    await refused(`new mod.Recommender(${v})`,
      `bundle must be a Uint8Array or ArrayBuffer (the bytes of a .gguf file), got ${shown}`);
  }
});

/** Random JS-like values for every exported method, run in the page: a list of what went wrong. */
function fuzzInPage({ seed, calls }) {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = (xs) => xs[Math.floor(rand() * xs.length)];
  const { rec, mod, bytes } = window;
  const n = rec.numItems;
  const width = rec.userVector([1]).length;
  const numbers = [0, -0, 1, 2, 3, 10, n, n - 1, n + 1, -1, -2, 0.5, 1.5, -0.5, NaN, Infinity, -Infinity,
    1e9, 1e300, -1e300, 5e-324, Number.MAX_SAFE_INTEGER, Number.MAX_VALUE, 2 ** 31, 2 ** 32 - 1, 2 ** 32,
    3.4e38, 3.5e38];
  const others = () => [undefined, null, true, false, '', '3', 'x', [], [1], [[1]], {}, { length: 3 },
    () => 1, Symbol('s'), 10n, new Uint8Array(3), new Float32Array(3), new Date(0), new Array(5)];
  const number = () => (rand() < 0.5 ? pick(numbers)
    : rand() < 0.5 ? Math.floor(rand() * (n + 5)) : (rand() - 0.5) * 20);
  const value = () => (rand() < 0.75 ? number() : pick(others()));
  const id = () => (rand() < 0.9 ? 1 + Math.floor(rand() * n) : value());
  const session = () => {
    if (rand() < 0.1) return value();
    const len = Math.floor(rand() * 12);
    return Array.from({ length: len }, id);
  };
  const vector = () => {
    const r = rand();
    const len = r < 0.7 ? width : Math.floor(rand() * (2 * width + 2));
    const typed = rand() < 0.5;
    const v = typed ? new Float32Array(len) : new Array(len);
    // A Float32Array holds numbers only (NaN, infinities); an array anything.
    for (let i = 0; i < len; i++) v[i] = rand() < 0.99 ? (rand() - 0.5) * 4 : typed ? number() : value();
    return r < 0.95 ? v : value();
  };
  const args = (gens) => {
    // Trailing arguments are sometimes left out, as a caller may.
    const m = rand() < 0.2 ? Math.floor(rand() * gens.length) : gens.length;
    return gens.slice(0, m).map((g) => g());
  };
  const bundleLike = () => {
    const r = rand();
    if (r < 0.3) return value();
    if (r < 0.5) return bytes.slice(0, Math.floor(rand() * bytes.length));
    if (r < 0.7) {
      const b = bytes.slice();
      for (let i = 0; i < 3; i++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      return b;
    }
    if (r < 0.8) return bytes.buffer.slice(0);
    return new Uint8Array(Math.floor(rand() * 64)).map(() => Math.floor(rand() * 256));
  };
  const methods = [
    ['recommend', () => args([session, () => (rand() < 0.7 ? 1 + Math.floor(rand() * 20) : value()),
      () => (rand() < 0.6 ? pick([true, false, undefined]) : value()),
      () => (rand() < 0.5 ? rand() * 3 : value())]), (a) => rec.recommend(...a)],
    ['item', () => args([id]), (a) => rec.item(...a)],
    ['userVector', () => args([session]), (a) => rec.userVector(...a)],
    ['topKForUser', () => args([vector, () => (rand() < 0.7 ? 1 + Math.floor(rand() * 20) : value())]),
      (a) => rec.topKForUser(...a)],
    ['items', () => [], () => rec.items()],
    ['info', () => [], () => rec.info()],
    ['numItems', () => [], () => rec.numItems],
    ['lastLatencyMs', () => [], () => rec.lastLatencyMs],
    ['itemMatrix', () => [], () => (rand() < 0.05 ? rec.itemMatrix() : [])],
    ['new Recommender', () => [bundleLike()], ([b]) => {
      const r = new mod.Recommender(b);
      const out = r.recommend([1], 3);
      r.free();
      return out;
    }],
  ];
  const hasNaN = (v, depth = 0) => {
    if (typeof v === 'number') return Number.isNaN(v);
    if (depth > 4 || v === null || typeof v !== 'object') return false;
    if (ArrayBuffer.isView(v)) return Array.prototype.some.call(v, Number.isNaN);
    return Object.values(v).some((x) => hasNaN(x, depth + 1));
  };
  const describe = (a) => a.map((x) => {
    if (typeof x === 'bigint') return `${x}n`;
    if (typeof x === 'number') return String(x);
    try { return JSON.stringify(x)?.slice(0, 60) ?? String(x); } catch { return `a ${typeof x}`; }
  }).join(', ');
  // Every message the checks give names what was wrong; anything else is a glue or runtime error.
  const known = /^(request: )?(k must be|item id |unknown item id |empty session|session must be|includeSession must|tail weight|user vector|bundle)/;
  const problems = [];
  const counts = {};
  for (let c = 0; c < calls; c++) {
    const [name, gen, call] = pick(methods);
    const a = gen();
    let out;
    try {
      out = call(a);
      counts[name] = (counts[name] ?? 0) + 1;
    } catch (e) {
      if (!(e instanceof Error) || e instanceof WebAssembly.RuntimeError || !known.test(e.message)) {
        problems.push(`${name}(${describe(a)}) threw ${e?.constructor?.name}: ${e?.message}`);
      }
      continue;
    }
    if (hasNaN(out)) problems.push(`${name}(${describe(a)}) returned NaN`);
    if (problems.length > 20) break;
  }
  // The instance still answers, every method did answer some of the time.
  if (rec.recommend([1, 2, 3], 10).length !== 10) problems.push('the recommender no longer answers');
  for (const [name] of methods) if (!counts[name]) problems.push(`${name} never answered`);
  return { problems, counts };
}

test('random JS-like values for every exported method never trap and never return NaN', async (t) => {
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1e9);
  const calls = Number(process.env.FUZZ_CALLS ?? 3000);
  const { problems, counts } = await page.evaluate(fuzzInPage, { seed, calls });
  t.diagnostic(`seed ${seed}, ${calls} calls; answered: ${JSON.stringify(counts)}`);
  assert.deepEqual(problems, [], `seed ${seed} (rerun with FUZZ_SEED=${seed})`);
});

test('a panic is thrown as an Error with its message, and the instance then refuses calls', async () => {
  // Its own page: a panic stops the module instance it happens in.
  const { p, errors } = await openPage();
  try {
    const got = await p.evaluate(() => {
      const attempt = (f) => {
        try { f(); return 'returned'; } catch (e) { return `${e.constructor.name}: ${e.message}`; }
      };
      return [attempt(() => window.mod.__panicForTests()), attempt(() => window.rec.recommend([1], 5)),
        attempt(() => window.mod.__panicForTests()), attempt(() => window.rec.item(1))];
    });
    assert.match(got[0], /^Error: llm-esr panicked at src\/wasm\.rs:\d+:\d+: a panic asked for by __panicForTests$/);
    for (const later of got.slice(1)) {
      assert.match(later, /^Error: llm-esr stopped after an internal error \(llm-esr panicked at src\/wasm\.rs:\d+:\d+: a panic asked for by __panicForTests\); reload the module to go on$/);
    }
    assert.deepEqual(errors, []);
  } finally {
    await p.close();
  }
});

test('addItems: new items from text vectors, each argument checked, nothing half-added', async () => {
  const withText = siteBundles().find((b) => b.name === 'ml-100k-sasrec-llmesr-new');
  assert.ok(withText, 'the test site has the bundle with a text space and new items');
  const got = await page.evaluate(async (url) => {
    const r = new window.mod.Recommender(new Uint8Array(await (await fetch(url)).arrayBuffer()));
    const dim = 384;
    const attempt = (f) => {
      try { return { value: f() }; } catch (e) { return { error: `${e.constructor.name}: ${e.message}` }; }
    };
    const before = r.numItems;
    const vec = Float32Array.from({ length: dim }, (_, i) => Math.sin(i));
    const bad = [
      attempt(() => r.addItems('x')),
      attempt(() => r.addItems([{ key: 1, title: 't', vector: vec }])),
      attempt(() => r.addItems([{ key: 'a', title: 't', vector: vec.slice(1) }])),
      attempt(() => r.addItems([{ key: 'a', title: 't', vector: [...vec.slice(0, dim - 1), NaN] }])),
      attempt(() => r.addItems([{ key: 'a', title: 't', vector: vec }, { key: 'a', title: 'u', vector: vec }])),
      attempt(() => r.addItems([{ key: 'new-1', title: 't', vector: vec }])),
      attempt(() => window.rec.addItems([{ key: 'a', title: 't', vector: vec }])),
    ];
    const unchanged = r.numItems === before;
    const ids = Array.from(r.addItems([{ key: 'added-1', title: 'Added in the browser', vector: vec }]));
    const item = r.item(ids[0]);
    const old = r.item(1);
    const recs = r.recommend([ids[0], 1], before + 1);
    r.free();
    return { bad, unchanged, before, ids, item, old, newInRecs: recs.some((x) => x.id === 1474 && x.new) };
  }, '/bundles/' + withText.file);
  assert.deepEqual(got.bad.map((b) => b.error), [
    'Error: items must be an array of {key, title, vector}, got "x"',
    'Error: new item 1: key must be a string, got 1',
    'Error: request: new item 1 ("a"): the vector has 383 values; the bundle\'s text model all-minilm-l6-v2-8f2dab45 gives 384',
    'Error: request: new item 1 ("a"): value 383 of the vector is NaN, not a finite number',
    'Error: request: new item 2 ("a"): the key is given twice',
    'Error: request: new item 1 ("new-1"): the catalogue already has this key',
    'Error: request: this bundle cannot place new items: it has no text space (export it with --text-width and --new-item-id)',
  ]);
  assert.ok(got.unchanged, 'a refused call adds nothing');
  assert.deepEqual(got.ids, [got.before + 1]);
  assert.equal(got.item.title, 'Added in the browser');
  assert.ok(got.item.new && got.item.tail && !got.old.new);
  assert.ok(got.newInRecs, 'an item added by add-items (id 1474) is recommended');
});
