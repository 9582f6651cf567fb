#!/usr/bin/env bash
# Fills the quality table of BENCHMARKS.md: every (dataset, backbone, variant, seed) run of the
# LLM-ESR issue, plus two floors: most-popular and text-only (language-model neighbours). Two
# workers take jobs from one list, one thread each unless THREADS says otherwise
# (RAYON_NUM_THREADS=1 uses 2 cores better than one two-thread run after another). A job is done
# when its run folder has run.json or its tag is listed in reports/quality-jobs-done.txt; a killed
# job continues from its resume file when the script is run again, so the table can be filled over
# several sittings of one checkout. Rows go to one file per job under artifacts/quality/rows/ and
# are merged into reports/quality.json (the `nobucket` jobs' into reports/quality-nobucket.json) by
# `scripts/quality.sh merge`, which also lists the job in reports/quality-jobs-done.txt: that list
# is committed with the rows, so a fresh checkout (where the git-ignored artifacts/ is empty) does
# not train finished cells again, but starts unfinished ones from epoch 1 (checkpoints derived from
# MovieLens may not be committed).
#   JOBS=list.txt overrides the job list (one job per line: dataset backbone variant seed [flags]).
#   THREADS=N gives each worker N threads (default 1); a list of one job runs best with THREADS=2.
set -euo pipefail
cd "$(dirname "$0")/.."
out=artifacts/quality
report=${REPORT:-reports/quality.json}
done_list=${DONE_LIST:-reports/quality-jobs-done.txt}
extra_report=${EXTRA_REPORT:-reports/quality-nobucket.json}
mkdir -p "$out/rows" reports

merge_rows() { # report rows-files...
  python3 - "$@" <<'PY'
import json, os, sys
report = sys.argv[1]
# An unmatched glob arrives as its pattern.
parts = [p for p in sys.argv[2:] if os.path.exists(p)]
if not parts and not os.path.exists(report):
    sys.exit(0)
try:
    rows = json.load(open(report))
except FileNotFoundError:
    rows = []
key = lambda r: (r["dataset"], r["backbone"], r["variant"], r.get("ablation"), r.get("quant"), r["mode"],
                 r.get("loss"), r.get("preset"), r.get("session_len"), r.get("cold_share"), r.get("cold_seed"),
                 r["protocol"], r["seed"], r["group"], r["metric"])
# A re-run of the same cell replaces the old rows.
index = {key(r): i for i, r in enumerate(rows)}
for p in parts:
    for r in json.load(open(p)):
        if key(r) in index:
            rows[index[key(r)]] = r
        else:
            index[key(r)] = len(rows)
            rows.append(r)
tmp = report + ".tmp"
json.dump(rows, open(tmp, "w"), indent=2)
os.replace(tmp, report)
print(f"{report}: {len(rows)} rows")
PY
}

merge() {
  merge_rows "$report" "$out"/rows/*.json
  # Rows of the `nobucket` jobs: kept and committed beside the table, not in it.
  merge_rows "$extra_report" "$out"/extra/*.json
  # Job tags of the merged rows files; the floors are not jobs.
  touch "$done_list"
  { cat "$done_list"
    for f in "$out"/rows/*.json "$out"/extra/*.json; do
      [ -e "$f" ] || continue
      t=$(basename "$f" .json)
      case $t in mostpop-*|textknn-*) ;; *) echo "$t" ;; esac
    done
  } | sort -u > "$done_list.tmp"
  mv "$done_list.tmp" "$done_list"
}
if [ "${1:-}" = merge ]; then merge; exit 0; fi

bash scripts/fetch-data.sh
cargo build --release --bin llmesr
# The workers run a copy, so rebuilding during a long fill does not change the binary under them.
mkdir -p "$out/bin" && cp target/release/llmesr "$out/bin/llmesr"
bin=$out/bin/llmesr
for ds in ml-100k ml-1m; do
  [ -f "artifacts/semantic/$ds.safetensors" ] || \
    $bin embed --data "data/$ds" --out "artifacts/semantic/$ds.safetensors" --quiet
  [ -f "$out/rows/mostpop-$ds.json" ] || \
    $bin baseline --data "data/$ds" --report "$out/rows/mostpop-$ds.json" > /dev/null
  [ -f "$out/rows/textknn-$ds.json" ] || $bin baseline --data "data/$ds" \
    --semantic "artifacts/semantic/$ds.safetensors" --report "$out/rows/textknn-$ds.json" > /dev/null
done

default_jobs() {
  # The cells the issue asks for: cheap and headline cells first, seeds 42-44. A job with the
  # word `nobucket` trains on uniformly drawn batches (the reference's way) to measure what length
  # bucketing costs in quality; its rows stay out of the table.
  for b in sasrec gru4rec bert4rec; do
    echo "ml-100k $b base 42"
    echo "ml-100k $b llmesr 42"
  done
  echo "ml-1m sasrec llmesr 42"
  # The one variant ahead of base at equal epochs on ML-1M validation so far (BENCHMARKS.md §1).
  echo "ml-1m sasrec llmesr 42 --cross-residual --distill-weight 0"
  echo "ml-1m sasrec base 42"
  echo "ml-100k sasrec llmesr 42 --teacher fresh"
  for s in 42 43 44; do echo "ml-100k sasrec base $s nobucket"; done
  for s in 43 44; do
    for b in sasrec gru4rec bert4rec; do
      echo "ml-100k $b base $s"
      echo "ml-100k $b llmesr $s"
    done
  done
  for s in 43 44; do echo "ml-1m sasrec base $s"; echo "ml-1m sasrec llmesr $s"; done
  echo "ml-1m gru4rec base 42"; echo "ml-1m gru4rec llmesr 42"
  # BERT4Rec's cells keep the reference's fresh teacher: its cached one costs 7% on ML-100k
  # (BENCHMARKS.md §1), unlike SASRec's. The ML-1M cached run (about 60% of the fresh run's
  # epoch time) is measured against it at the end.
  echo "ml-1m bert4rec base 42"; echo "ml-1m bert4rec llmesr 42"
  # The cached teacher is this project's departure: measured against the reference's fresh one
  # over three seeds where that is affordable (the ML-1M runs are at the end).
  for s in 43 44; do echo "ml-100k sasrec llmesr $s --teacher fresh"; done
  # The issue's ablations, then --cross-residual (this project's departure, measured beside them;
  # with self-distillation off too, it is queued above).
  for a in "--distill-weight 0" "--views collaborative" "--views semantic" "--no-cross" "--id-init random" \
      "--cross-residual"; do
    echo "ml-1m sasrec llmesr 42 $a"
  done
  echo "ml-1m sasrec base 42 --mode faithful"
  echo "ml-1m sasrec llmesr 42 --mode faithful"
  # BERT4Rec's cached teacher against the fresh one of its rows; then SASRec's reference teacher on
  # ML-1M (last: it costs the most).
  for s in 42 43 44; do echo "ml-100k bert4rec llmesr $s --teacher cached"; done
  echo "ml-1m bert4rec llmesr 42 --teacher cached"
  echo "ml-1m sasrec llmesr 42 --teacher fresh"
}
jobs_file=${JOBS:-$out/jobs.txt}
[ -n "${JOBS:-}" ] || default_jobs > "$jobs_file"
rm -rf "$out"/claims && mkdir -p "$out/claims"

run_job() { # dataset backbone variant seed [flags...]
  local ds=$1 b=$2 v=$3 s=$4; shift 4
  local tag; tag=$(echo "$ds-$b-$v-s$s $*" | tr -s ' -' '-' | tr -d "'\"" | sed 's/-$//')
  local dir=$out/runs/$tag
  [ -f "$dir/run.json" ] && return 0
  grep -qxF "$tag" "$done_list" 2>/dev/null && return 0
  mkdir "$out/claims/$tag" 2>/dev/null || return 0
  local extra=() rows=$out/rows
  # The cached teacher keeps SASRec and GRU4Rec runs affordable on 2 cores at no measured cost;
  # BERT4Rec's costs 7% on ML-100k (BENCHMARKS.md §1), so a BERT4Rec job without --teacher
  # means the reference's fresh one.
  if [ "$v" = llmesr ]; then
    extra+=(--semantic "artifacts/semantic/$ds.safetensors")
    case " $* " in *" --teacher "*) ;; *) [ "$b" = bert4rec ] || extra+=(--teacher cached) ;; esac
  fi
  local flags=()
  for f in "$@"; do
    if [ "$f" = nobucket ]; then rows=$out/extra; else flags+=("$f"); fi
  done
  [ "$rows" = "$out/rows" ] && extra+=(--bucket)
  mkdir -p "$rows"
  mkdir -p "$dir"
  echo "$(date -u +%FT%TZ) start $tag"
  RAYON_NUM_THREADS=${THREADS:-1} $bin train --data "data/$ds" --backbone "$b" --variant "$v" --seed "$s" \
    --quiet --resume --out "$dir" --report "$rows/$tag.json" "${extra[@]}" "${flags[@]}" \
    > "$dir/train.log" 2>&1 || { echo "$(date -u +%FT%TZ) FAILED $tag (see $dir/train.log)"; return 0; }
  echo "$(date -u +%FT%TZ) done $tag: $(grep 'per training epoch' "$dir/train.log")"
}

worker() {
  while read -r line; do
    [ -z "$line" ] && continue
    # shellcheck disable=SC2086
    run_job $line
  done < "$jobs_file"
}
worker > "$out/worker-1.log" 2>&1 &
a=$!
sleep 5
worker > "$out/worker-2.log" 2>&1 &
b=$!
wait $a; wait $b
merge
