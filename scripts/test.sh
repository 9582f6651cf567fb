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

# A small trained model for the browser tests: parity needs real weights, not their quality.
e2e=target/e2e
./target/release/llmesr train --data data/ml-100k --out "$e2e/run" --epochs 2 --quiet > /dev/null
./target/release/llmesr export --run "$e2e/run" --out "$e2e/ml-100k-sasrec.gguf"
bash scripts/build-web.sh "$e2e/site" "$e2e/ml-100k-sasrec.gguf"
node --test tests/e2e/
