#!/usr/bin/env bash
# The main job: fetch MovieLens-1M and MiniLM, embed items and users, train LLM-ESR on SASRec with a
# quick default, export f32 and Q8_0 bundles, build the static site into dist/ and serve it on
# 127.0.0.1. EPOCHS / PATIENCE
# train longer (the reference uses 200 + patience 20).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_wasm_toolchain
ensure_node_packages   # binaryen's wasm-opt shrinks the wasm
bash scripts/fetch-data.sh
cargo build --release --bin llmesr
bin=./target/release/llmesr
semantic=artifacts/semantic/ml-1m.safetensors
[ -f "$semantic" ] || $bin embed --data data/ml-1m --out "$semantic"
run=artifacts/ml-1m-sasrec-llmesr
$bin train --data data/ml-1m --variant llmesr --semantic "$semantic" --teacher cached --bucket \
  --out "$run" --epochs "${EPOCHS:-10}" --patience "${PATIENCE:-5}" --report artifacts/quality.json
# The model picker offers the f32 bundle and the Q8_0 one (about a third of the download).
$bin export --run "$run" --out artifacts/ml-1m-sasrec-llmesr.gguf
$bin export --run "$run" --quant q8 --out artifacts/ml-1m-sasrec-llmesr-q8.gguf
bash scripts/build-web.sh dist artifacts/ml-1m-sasrec-llmesr-q8.gguf artifacts/ml-1m-sasrec-llmesr.gguf
port=${PORT:-8000}
echo "serving the demo at http://127.0.0.1:$port/ (Ctrl-C to stop)"
exec python3 -m http.server --bind 127.0.0.1 --directory dist "$port"
