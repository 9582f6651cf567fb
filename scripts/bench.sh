#!/usr/bin/env bash
# The speed numbers of BENCHMARKS.md: the browser benchmark page in headless Chromium
# (reports/bench.json), the same workload natively with criterion (reports/bench-native.json), and
# the catalogue-scaling study (synthetic 10k / 100k / 1M-item catalogues, same encoder).
#   scripts/bench.sh [RUN_DIR]    RUN_DIR defaults to the ML-1M SASRec LLM-ESR quality run.
# Run it on a quiet machine: other work on the cores shows up in every percentile.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_wasm_toolchain
ensure_chromium
ensure_node_packages
bash scripts/fetch-data.sh
cargo build --release --bin llmesr
bin=target/release/llmesr
run=${1:-artifacts/quality/runs/ml-1m-sasrec-llmesr-s42}
b=target/bench
rm -rf "$b/bundles" && mkdir -p "$b/bundles"
if [ -f "$run/run.json" ]; then
  for q in f32 q8 q4; do
    $bin export --run "$run" --quant $q --out "$b/bundles/ml-1m-$(basename "$run")-$q.gguf"
  done
else
  echo "no finished run at $run: timing an untrained ML-1M-shaped LLM-ESR bundle instead" >&2
  for q in f32 q8 q4; do
    $bin synthetic --items 3503 --llmesr --quant $q --out "$b/bundles/ml-1m-shaped-llmesr-$q.gguf"
  done
fi
$bin workload --data data/ml-1m --out "$b/workload.json"
# Scaling: random tables, the same encoder shape (SASRec LLM-ESR, 64-d, 2 layers).
for n in 10000 100000 1000000; do
  for q in f32 q8 q4; do
    # A 1M-item f32 bundle is half a gigabyte; the study keeps q8 and q4 there.
    [ "$n" = 1000000 ] && [ $q = f32 ] && continue
    $bin synthetic --items $n --llmesr --quant $q --out "$b/bundles/synthetic-$n-$q.gguf"
  done
done
bash scripts/build-web.sh "$b/site" "$b"/bundles/ml-1m-*.gguf "$b"/bundles/synthetic-1{0000,00000,000000}-*.gguf
cp "$b/workload.json" "$b/site/bundles/workload.json"
node tests/e2e/run-bench.mjs "$b/site" reports/bench.json
LLMESR_BENCH_SITE="$b/site" cargo bench --bench recommend -- --warm-up-time 1 --measurement-time 3 --sample-size 30
# Criterion's medians next to the browser's rows, for the wasm/native ratio.
python3 - <<'PY'
import glob, json, os, datetime, platform
rows = []
for f in sorted(glob.glob("target/criterion/*/*/new/estimates.json")):
    parts = f.split("/")
    bench = json.load(open(os.path.join(os.path.dirname(f), "benchmark.json")))
    est = json.load(open(f))
    rows.append({"bundle": bench["group_id"], "what": bench["function_id"].split("/")[0],
                 "session_len": int(bench["function_id"].split("/")[1]) if "/" in bench["function_id"] else 50,
                 "median_ms": est["median"]["point_estimate"] / 1e6,
                 "mean_ms": est["mean"]["point_estimate"] / 1e6})
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
out = {"date": datetime.date.today().isoformat(), "machine": f"{cpu}, {os.cpu_count()} cores",
       "tool": "criterion (cargo bench --bench recommend)", "rows": rows}
json.dump(out, open("reports/bench-native.json.tmp", "w"), indent=2)
os.replace("reports/bench-native.json.tmp", "reports/bench-native.json")
print(f"reports/bench-native.json: {len(rows)} rows")
PY
