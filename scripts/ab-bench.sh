#!/usr/bin/env bash
# Inference latency of the working tree against a base revision, in headless Chromium and natively:
#   scripts/ab-bench.sh BASE_REV [ROUNDS]      (ROUNDS defaults to 6)
# Both sides time the same untrained SASRec LLM-ESR bundles of the ML-1M model's shape (latency does
# not depend on the weights' values) with the same seeded random sessions: by default one of
# ML-1M's 3,503 items with f32 tables; AB_BUNDLES="ITEMS:QUANT ..." names others (e.g.
# AB_BUNDLES="3503:f32 1000000:q4" for a big catalogue beside it). Single runs on a small VM swing by
# tens of percent, so the two builds take turns ROUNDS times (each going first in half the rounds)
# and the medians of their p50s are compared. Run it on a quiet machine; PAUSE_PIDS="pid ..." stops those processes (a training job,
# say) during the timed rounds only and resumes them after. Writes target/ab/summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 BASE_REV [ROUNDS]" >&2; exit 2; }
base_rev=$(git rev-parse --verify "$1^{commit}")
rounds=${2:-6}
source scripts/setup.sh
ensure_wasm_toolchain
ensure_chromium
ensure_node_packages
ab=$PWD/target/ab
# The base's tree lives outside this one: cargo would otherwise merge both trees' .cargo/config.toml.
base=${TMPDIR:-/tmp}/llmesr-ab-base
rm -rf "$ab/runs" && mkdir -p "$ab/runs"
git worktree remove --force "$base" 2>/dev/null || rm -rf "$base"
git worktree add --detach "$base" "$base_rev" >/dev/null
trap 'git worktree remove --force "$base"' EXIT
# One target directory for both trees, so the dependencies build once; and the base's build-web.sh
# finds wasm-opt where this tree's npm install put it.
ln -s "$PWD/target" "$base/target"
ln -s "$PWD/tests/e2e/node_modules" "$base/tests/e2e/node_modules"

cargo build --release --bin llmesr
bundles=()
for spec in ${AB_BUNDLES:-3503:f32}; do
  items=${spec%%:*} quant=${spec##*:}
  bundles+=("$ab/synthetic-$items-llmesr-$quant.gguf")
  [ -f "${bundles[-1]}" ] || target/release/llmesr synthetic --items "$items" --llmesr --quant "$quant" \
    --out "${bundles[-1]}"
done

build_side() { # TREE SIDE
  # Both trees build the same package into one directory and cargo judges freshness by mtime:
  # touching the sources makes it rebuild (and re-copy) the crate from this tree.
  find "$1/src" "$1/benches" "$1/Cargo.toml" -exec touch {} +
  (cd "$1" && bash scripts/build-web.sh "$ab/site-$2" "${bundles[@]}")
  local exe
  exe=$(cd "$1" && cargo bench --bench recommend --no-run 2>&1 \
    | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
  cp "$1/$exe" "$ab/native-$2"
}
build_side "$base" base
build_side "$PWD" head

resume() { [ -z "${PAUSE_PIDS:-}" ] || kill -CONT $PAUSE_PIDS 2>/dev/null || true; }
trap 'resume; git worktree remove --force "$base"' EXIT
[ -z "${PAUSE_PIDS:-}" ] || kill -STOP $PAUSE_PIDS
for i in $(seq "$rounds"); do
  # Alternate which side goes first: whatever the first run of a round leaves behind (a browser
  # still exiting, a cold cache) then falls on both sides alike.
  sides="base head"; [ $((i % 2)) = 0 ] && sides="head base"
  for side in $sides; do
    node tests/e2e/run-bench.mjs "$ab/site-$side" "$ab/runs/browser-$side-$i.json" >/dev/null
    # Criterion's middle estimate (of the mean time per call) stands in for the p50 natively.
    LLMESR_BENCH_SITE="$ab/site-$side" "$ab/native-$side" --bench "recommend/" --warm-up-time 1 \
      --measurement-time 3 --sample-size 30 --noplot 2>/dev/null \
      | awk -v out="$ab/runs/native-$side-$i.tsv" '
          $1 ~ /\// { name = $1 }
          { for (f = 1; f <= NF; f++) if ($f == "time:") print name "\t" $(f + 3) $(f + 4) > out }'
  done
done
resume

python3 - "$ab" "$base_rev" "$(git rev-parse HEAD)$(git diff --quiet HEAD || echo '+changes')" "$rounds" <<'PY'
import datetime, glob, json, os, re, statistics, sys
ab, base_rev, head_rev, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def ms(text):
    units = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}
    for u in sorted(units, key=len, reverse=True):
        if text.endswith(u):
            return float(text[: -len(u)]) * units[u]
    raise ValueError(text)
def by_round(pattern):  # round order, so that the two sides' lists pair up round by round
    return sorted(glob.glob(pattern), key=lambda f: int(re.search(r"-(\d+)\.\w+$", f).group(1)))
p50 = {}
for side in ("base", "head"):
    for f in by_round(f"{ab}/runs/browser-{side}-*.json"):
        for r in json.load(open(f))["rows"]:
            p50.setdefault(("browser", r["bundle"], r["what"], r["session_len"], side), []).append(r["p50_ms"])
    for f in by_round(f"{ab}/runs/native-{side}-*.tsv"):
        for line in open(f):
            name, t = line.rstrip("\n").split("\t")
            bundle, _, n = name.split("/")
            p50.setdefault(("native", bundle, "recommend", int(n), side), []).append(ms(t))
rows = []
for (where, bundle, what, n, side) in sorted(k for k in p50 if k[4] == "base"):
    b, h = p50[(where, bundle, what, n, "base")], p50.get((where, bundle, what, n, "head"), [])
    if not h:
        continue
    mb, mh = statistics.median(b), statistics.median(h)
    faster = sum(x < y for x, y in zip(h, b))
    rows.append({"where": where, "bundle": bundle, "what": what, "session_len": n, "base_ms": mb, "head_ms": mh,
                 "ratio": mh / mb, "head_faster_rounds": faster, "rounds": min(len(b), len(h))})
    print(f"{where:8} {bundle:28} {what:12} {n:4}  base {mb:8.3f} ms  head {mh:8.3f} ms  ×{mh / mb:.2f}  "
          f"head faster in {faster}/{min(len(b), len(h))} rounds")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
json.dump({"date": datetime.date.today().isoformat(), "machine": f"{cpu}, {os.cpu_count()} cores",
           "base": base_rev, "head": head_rev, "rounds": rounds, "rows": rows},
          open(f"{ab}/summary.json.tmp", "w"), indent=2)
os.replace(f"{ab}/summary.json.tmp", f"{ab}/summary.json")
PY
