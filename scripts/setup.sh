#!/usr/bin/env bash
# Installs what the build needs from the package registries; sourced by demo.sh and test.sh.
# Every step is skipped when its tool is already present at the right version.
set -euo pipefail

ensure_wasm_toolchain() {
  rustup target list --installed | grep -qx wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown
  # The CLI must match the wasm-bindgen crate version pinned in Cargo.lock exactly.
  local want
  want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
  if ! command -v wasm-bindgen >/dev/null || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$want" ]; then
    # Not --locked: the CLI's own lock file names a webpki-roots version the index no longer serves.
    cargo install wasm-bindgen-cli --version "$want"
  fi
}

ensure_chromium() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
  fi
}

ensure_node_packages() {
  (cd tests/e2e && npm ci --no-audit --no-fund --silent)
}
