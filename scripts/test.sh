#!/usr/bin/env bash
# Every test: formatting and lints (native and wasm), unit and integration tests (with MovieLens-100k
# fetched), a wasm build, and the browser tests in headless Chromium (parity with native, the demo page).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_wasm_toolchain
ensure_chromium
ensure_node_packages
bash scripts/fetch-data.sh

cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo clippy --release --target wasm32-unknown-unknown --lib -- -D warnings
cargo build --release --bin llmesr
cargo test --release
# The reference scripts need PyTorch to run (developer checks); here they must at least parse.
for f in scripts/reference-parity.py scripts/reference-step.py scripts/reference-timing.py scripts/reference_names.py; do python3 -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" "$f"; done
# The developer scripts that no test runs (bench, ab-bench, quality) must at least parse too.
for f in scripts/*.sh; do bash -n "$f"; done

# Small trained models for the browser tests: parity needs real weights, not their quality. The
# LLM-ESR one goes through the whole method: MiniLM embeddings, PCA init, distillation, folding.
e2e=target/e2e
bin=./target/release/llmesr
$bin train --data data/ml-100k --out "$e2e/run" --epochs 2 --quiet > /dev/null
$bin export --run "$e2e/run" --out "$e2e/ml-100k-sasrec-base.gguf"
$bin embed --data data/ml-100k --out "$e2e/ml-100k-semantic.safetensors" --quiet
$bin train --data data/ml-100k --variant llmesr --semantic "$e2e/ml-100k-semantic.safetensors" \
  --teacher cached --bucket --out "$e2e/run-llmesr" --epochs 2 --quiet > /dev/null
$bin export --run "$e2e/run-llmesr" --out "$e2e/ml-100k-sasrec-llmesr.gguf"
# A text space and two new items placed from their text alone: the demo marks them "new" and the
# text term (weight 4, tail candidates, newest item) brings them into the lists.
$bin export --run "$e2e/run-llmesr" --text-width 64 --new-item-id pca --text-weight 4 \
  --out "$e2e/ml-100k-llmesr-text.gguf"
printf '%s\n' $'item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq' \
  $'new-1\tToy Story 4\t2019\tAnimation Children\'s Comedy' \
  $'new-2\tStar Wars: The Rise of Skywalker\t2019\tAction Adventure Sci-Fi' > "$e2e/new.item"
$bin add-items --bundle "$e2e/ml-100k-llmesr-text.gguf" --items "$e2e/new.item" --quiet \
  --out "$e2e/ml-100k-sasrec-llmesr-new.gguf"
# Quantized tables take the browser's SIMD block kernels; parity holds them to the native ones.
for q in q8 q4; do
  $bin export --run "$e2e/run-llmesr" --quant $q --out "$e2e/ml-100k-sasrec-llmesr-$q.gguf"
done
# The other backbones' LLM-ESR structure, with untrained weights (parity, not quality).
synth=()
for b in gru4rec bert4rec; do
  for v in base llmesr; do
    flag=(); [ "$v" = llmesr ] && flag=(--llmesr)
    $bin synthetic --items 700 --backbone "$b" "${flag[@]}" --seed 3 --out "$e2e/synthetic-$b-$v.gguf"
    synth+=("$e2e/synthetic-$b-$v.gguf")
  done
done
# Titles that are markup: the page must show them as text and run nothing.
printf '%s\n' '<img src=x onerror="window.__pwned=1">Evil image' '<script>window.__pwned=2</script>Script' \
  '<b onmouseover="window.__pwned=3">Bold</b> movie' > "$e2e/markup-titles.txt"
$bin synthetic --items 64 --max-len 20 --titles "$e2e/markup-titles.txt" --out "$e2e/markup.gguf"
bash scripts/build-web.sh "$e2e/site" "$e2e/ml-100k-sasrec-base.gguf" "$e2e/ml-100k-sasrec-llmesr.gguf" \
  "$e2e"/ml-100k-sasrec-llmesr-q{8,4}.gguf "${synth[@]}" "$e2e/markup.gguf" \
  "$e2e/ml-100k-sasrec-llmesr-new.gguf"
node --test tests/e2e/
