#!/usr/bin/env bash
# Builds the wasm package into pkg/ and writes a self-contained static site:
#   scripts/build-web.sh OUT_DIR BUNDLE.gguf [BUNDLE.gguf ...]
# OUT_DIR gets the page (www/), the package (pkg/) and the bundles with a manifest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 OUT_DIR BUNDLE..." >&2; exit 2; }
out=$1; shift
cargo build --profile release-lto --target wasm32-unknown-unknown --lib
wasm-bindgen --target web --out-dir pkg target/wasm32-unknown-unknown/release-lto/llm_esr.wasm
# Debian's binaryen is too old for wasm-bindgen's output; the npm package's wasm-opt works.
wasm_opt=tests/e2e/node_modules/binaryen/bin/wasm-opt
if [ -x "$wasm_opt" ]; then
  before=$(stat -c %s pkg/llm_esr_bg.wasm)
  "$wasm_opt" -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue pkg/llm_esr_bg.wasm -o pkg/llm_esr_bg.opt.wasm
  mv pkg/llm_esr_bg.opt.wasm pkg/llm_esr_bg.wasm
  echo "wasm-opt -O3: $before -> $(stat -c %s pkg/llm_esr_bg.wasm) bytes"
else
  echo "wasm-opt not found at $wasm_opt (run npm ci in tests/e2e); shipping unoptimised wasm" >&2
fi
rm -rf "$out.partial"
mkdir -p "$out.partial/bundles"
cp www/*.html www/*.js www/style.css www/favicon.svg "$out.partial/"
mkdir -p "$out.partial/pkg"
cp pkg/llm_esr.js pkg/llm_esr_bg.wasm pkg/llm_esr.d.ts "$out.partial/pkg/"
entries=()
for b in "$@"; do
  name=$(basename "$b")
  cp "$b" "$out.partial/bundles/$name"
  # The digest versions the bundle's URL, so a browser that cached an older build fetches the new one.
  entries+=("{\"name\": \"${name%.gguf}\", \"file\": \"$name\", \"bytes\": $(stat -c %s "$b"), \"sha256\": \"$(sha256sum "$b" | cut -c1-16)\"}")
done
(IFS=,; echo "{\"bundles\": [${entries[*]}]}") > "$out.partial/bundles/manifest.json"
rm -rf "$out" && mv "$out.partial" "$out"
echo "site: $out ($(du -sh "$out" | cut -f1); wasm $(stat -c %s "$out/pkg/llm_esr_bg.wasm") bytes)"
