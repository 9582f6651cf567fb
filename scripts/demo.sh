#!/usr/bin/env bash
# The main job: fetch MovieLens-1M, train SASRec with a quick default, export a bundle, build the
# wasm site and serve it on 127.0.0.1. Set EPOCHS to train longer (the reference uses 200 + patience 20).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_wasm_toolchain
bash scripts/fetch-data.sh
cargo build --release --bin llmesr
run=artifacts/ml-1m-sasrec
./target/release/llmesr train --data data/ml-1m --out "$run" --epochs "${EPOCHS:-30}" --patience "${PATIENCE:-5}" \
  --report artifacts/quality.json
./target/release/llmesr export --run "$run" --out artifacts/ml-1m-sasrec.gguf
bash scripts/build-web.sh dist artifacts/ml-1m-sasrec.gguf
port=${PORT:-8000}
echo "serving the demo at http://127.0.0.1:$port/ (Ctrl-C to stop)"
exec python3 -m http.server --bind 127.0.0.1 --directory dist "$port"
