#!/usr/bin/env bash
# Reproduces the quality table of BENCHMARKS.md: most-popular and SASRec (corrected and faithful) on
# MovieLens-1M and MovieLens-100k, both protocols, all five groups, rows appended to reports/quality.json.
# The two modes train side by side, one thread each (RAYON_NUM_THREADS=1), which uses 2 cores better
# than one two-thread run after the other.
#   EPOCHS_1M / PATIENCE_1M and EPOCHS_100K / PATIENCE_100K bound the runs (defaults below).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-data.sh
cargo build --release --bin llmesr
bin=${LLMESR_BIN:-./target/release/llmesr}
report=${REPORT:-reports/quality.json}
mkdir -p reports artifacts/quality
for ds in ml-100k ml-1m; do
  for mode in corrected faithful; do
    $bin baseline --data "data/$ds" --mode "$mode" --report "$report" > /dev/null
  done
done
pipeline() {
  local mode=$1
  RAYON_NUM_THREADS=1 $bin train --data data/ml-100k --mode "$mode" --quiet --report "$report" \
    --epochs "${EPOCHS_100K:-200}" --patience "${PATIENCE_100K:-20}" --out "artifacts/quality/ml-100k-$mode"
  RAYON_NUM_THREADS=1 $bin train --data data/ml-1m --mode "$mode" --quiet --report "$report" \
    --epochs "${EPOCHS_1M:-200}" --patience "${PATIENCE_1M:-20}" --out "artifacts/quality/ml-1m-$mode"
}
pipeline corrected > artifacts/quality/corrected.log 2>&1 &
a=$!
pipeline faithful > artifacts/quality/faithful.log 2>&1 &
b=$!
wait $a && wait $b
echo "rows in $report; runs under artifacts/quality/"
