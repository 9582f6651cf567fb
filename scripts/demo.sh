#!/usr/bin/env bash
# The main job: fetch MovieLens-1M and MiniLM, embed items and users, train the project's two
# named configurations on SASRec with a quick default (best-llm: LLM-ESR with residual
# cross-attention and cross-entropy; best-base: the strongest plain SASRec; BENCHMARKS.md §8),
# export their bundles (best-llm's with a text space and two films added from their text alone),
# build the static site into dist/ and serve it on 127.0.0.1. EPOCHS / PATIENCE train longer
# (the numbers in BENCHMARKS.md come from runs to early stopping: 200 epochs, patience 20).
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
epochs=(--epochs "${EPOCHS:-10}" --patience "${PATIENCE:-5}")
run=artifacts/ml-1m-sasrec-best-llm
$bin train --data data/ml-1m --preset best-llm --semantic "$semantic" --bucket --out "$run" \
  "${epochs[@]}" --report artifacts/quality.json
base=artifacts/ml-1m-sasrec-best-base
$bin train --data data/ml-1m --preset best-base --bucket --out "$base" "${epochs[@]}" \
  --report artifacts/quality.json
# The default bundle: Q8_0 tables (about a third of the f32 download) and a text space, so films
# that were never trained on can be added from their text; two 2019 films are, and the demo marks
# them "new".
$bin export --run "$run" --quant q8 --text-width 64 --new-item-id pca \
  --out artifacts/ml-1m-sasrec-best-llm-text.gguf
printf '%s\n' $'item_id:token\tmovie_title:token\trelease_year:float\tgenre:token' \
  $'new-1\tToy Story 4\t2019\tAnimation Children\'s Comedy' \
  $'new-2\tStar Wars: The Rise of Skywalker\t2019\tAction Adventure Sci-Fi' > artifacts/new-films.item
$bin add-items --bundle artifacts/ml-1m-sasrec-best-llm-text.gguf --items artifacts/new-films.item \
  --quiet --out artifacts/ml-1m-sasrec-best-llm-q8.gguf
# The picker also offers the f32 best-llm bundle and the best base beside it.
$bin export --run "$run" --out artifacts/ml-1m-sasrec-best-llm.gguf
$bin export --run "$base" --quant q8 --out artifacts/ml-1m-sasrec-best-base-q8.gguf
bash scripts/build-web.sh dist artifacts/ml-1m-sasrec-best-llm-q8.gguf \
  artifacts/ml-1m-sasrec-best-llm.gguf artifacts/ml-1m-sasrec-best-base-q8.gguf
port=${PORT:-8000}
echo "serving the demo at http://127.0.0.1:$port/ (Ctrl-C to stop)"
exec python3 -m http.server --bind 127.0.0.1 --directory dist "$port"
