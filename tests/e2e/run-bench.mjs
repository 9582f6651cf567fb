// Runs www/bench.html in headless Chromium over a built site and writes the results as
// reports/bench.json: `node tests/e2e/run-bench.mjs SITE_DIR [OUT.json]`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, serve, launch } from './harness.mjs';

const site = path.resolve(process.argv[2] ?? path.join(ROOT, 'target/bench/site'));
const out = path.resolve(process.argv[3] ?? path.join(ROOT, 'reports/bench.json'));
// Cross-origin isolation gives performance.now() 5 µs steps instead of 100 µs.
const server = await serve(site, {}, {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
});
const browser = await launch();
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(`${server.base}/bench.html?auto`);
  await page.waitForFunction(() => window.benchResult, null, { timeout: 900_000, polling: 1000 });
  const result = await page.evaluate(() => window.benchResult);
  if (result.error) throw new Error(result.error);
  if (!result.scorersAgree) throw new Error('the wasm and JavaScript scorers disagree');
  const cpu = os.cpus();
  const report = {
    browser: `Chromium ${browser.version()} (headless)`,
    date: new Date().toISOString().slice(0, 10),
    machine: `${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()}`,
    crossOriginIsolated: result.crossOriginIsolated,
    calls_per_row: result.calls,
    workload: result.workload,
    rows: result.rows,
  };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(`${out}.tmp`, JSON.stringify(report, null, 2));
  fs.renameSync(`${out}.tmp`, out);
  console.log(`wrote ${out}: ${result.rows.length} rows`);
  for (const r of result.rows) {
    console.log([r.bundle, r.quant, r.items, r.what, r.session_len, r.p50_ms.toFixed(3), r.p95_ms.toFixed(3),
      r.p99_ms.toFixed(3)].join('\t'));
  }
} finally {
  await browser.close();
  await server.close();
}
