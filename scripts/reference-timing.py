#!/usr/bin/env python3
"""Time a training epoch of the reference LLM-ESR (PyTorch) and of `llmesr train`, back to back.

The reference (https://github.com/liuqidong07/LLM-ESR, MIT) is not shipped or copied: this script
imports its own generator, dataset, model and trainer classes from a checkout and runs its
`SeqTrainer._train_one_epoch` — the loop its `main.py` runs, without the validation pass — on the
same data our CLI trains on: the dataset's users, items and time order, our text vectors, their PCA
to the hidden size (the reference's `pca.ipynb`), and our similar-user lists, written in the
reference's `data/<name>/handled/` layout. Then it trains our CLI for the same number of epochs with
the same batch size, window, hidden size, dropout and thread count, in the reference's own setting
(`--mode faithful --teacher fresh`, uniform batches), and once more with our defaults (`--bucket`,
`--teacher cached`), and prints the seconds per training epoch (the median over the epochs; our
side's from the run's epoch log, which excludes validation like the reference's loop) and the ratio.

A developer tool, not part of the test suite (it needs PyTorch, which CI does not install):

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy safetensors pandas tqdm
    llmesr embed --data data/ml-1m --out artifacts/semantic/ml-1m.safetensors
    /tmp/torchenv/bin/python scripts/reference-timing.py --reference PATH/TO/LLM-ESR \\
        --data data/ml-1m --semantic artifacts/semantic/ml-1m.safetensors --epochs 3 \\
        --report reports/reference-timing.json
"""

import argparse
import itertools
import json
import logging
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from types import SimpleNamespace

import numpy as np

os.environ.setdefault("TQDM_DISABLE", "1")  # the reference's progress bars would bury the timings
import torch  # noqa: E402
from safetensors import safe_open


def read_semantic(path):
    """Our semantic set: item vectors in item-id order, similar users (0-based), and both key lists."""
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
        items = f.get_tensor("items").astype(np.float32)
        similar = f.get_tensor("similar")
    return items, similar, json.loads(meta["item_keys"]), json.loads(meta["user_keys"])


def read_recbole_inter(data_dir):
    """(user, item, timestamp) rows of the dataset's RecBole `.inter` file, in file order."""
    name = os.path.basename(os.path.normpath(data_dir))
    path = os.path.join(data_dir, f"{name}.inter")
    with open(path, encoding="utf-8") as f:
        header = [h.split(":")[0] for h in f.readline().rstrip("\n").split("\t")]
        cols = {h: i for i, h in enumerate(header)}
        for needed in ("user_id", "item_id", "timestamp"):
            if needed not in cols:
                raise SystemExit(f"{path}: no {needed} column in the header")
        u, i, t = cols["user_id"], cols["item_id"], cols["timestamp"]
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == len(header):
                yield parts[u], parts[i], float(parts[t])


def sequences(data_dir, user_keys, item_keys):
    """Each of our users' items (reference ids: our item id), oldest first, ties in file order.

    Our filter keeps a row exactly when its user and its item survive it, so membership in the
    semantic set's key lists reproduces the filtered dataset.
    """
    users = {k: n for n, k in enumerate(user_keys)}
    items = {k: n + 1 for n, k in enumerate(item_keys)}
    events = [[] for _ in user_keys]
    for n, (u, i, t) in enumerate(read_recbole_inter(data_dir)):
        if u in users and i in items:
            events[users[u]].append((t, n, items[i]))
    for e in events:
        e.sort()
    if any(len(e) < 3 for e in events):
        raise SystemExit("a user of the semantic set has fewer than 3 interactions: wrong --data?")
    return [[i for _, _, i in e] for e in events]


def write_reference_layout(work, name, seqs, items, similar, hidden):
    handled = os.path.join(work, "data", name, "handled")
    os.makedirs(handled, exist_ok=True)
    with open(os.path.join(handled, "inter.txt"), "w") as f:
        for u, seq in enumerate(seqs):
            f.writelines(f"{u + 1} {i}\n" for i in seq)
    centred = items - items.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    pca = (centred @ vt[:hidden].T).astype(np.float32)
    with open(os.path.join(handled, "itm_emb_np.pkl"), "wb") as f:
        pickle.dump(items, f)
    with open(os.path.join(handled, f"pca{hidden}_itm_emb_np.pkl"), "wb") as f:
        pickle.dump(pca, f)
    if (similar >= len(seqs)).any():
        raise SystemExit("a similar-user list is shorter than the reference's 10")
    with open(os.path.join(handled, "sim_user_100.pkl"), "wb") as f:
        pickle.dump(similar.astype(np.int64), f)


def reference_args(ref_dir, overrides):
    """The reference's own argument parser (main.py's, without its imports), with its defaults."""
    with open(os.path.join(ref_dir, "main.py"), encoding="utf-8") as f:
        source = f.read()
    head = source[source.index("parser = argparse.ArgumentParser(") : source.index("args = parser.parse_args()")]
    # main.py also switches on autograd's anomaly detection here; --anomaly decides instead.
    head = head.replace("torch.autograd.set_detect_anomaly(True)", "")
    scope = {"argparse": argparse, "torch": torch}
    exec(compile(head, "main.py", "exec"), scope)
    parser = scope["parser"]
    for action in parser._actions:
        if action.dest == "dataset":
            action.choices = None  # its list names only the paper's three datasets
    return parser.parse_args(overrides)


def time_reference(ref_dir, work, name, a, variant):
    sys.path.insert(0, os.path.abspath(ref_dir))
    from generators.generator import Seq2SeqGeneratorAllUser
    from models.SASRec import SASRec_seq
    from trainers.sequence_trainer import SeqTrainer
    from utils.utils import set_seed

    args = reference_args(ref_dir, [
        "--dataset", name, "--model_name", "llmesr_sasrec", "--hidden_size", str(a.hidden),
        "--train_batch_size", str(a.batch_size), "--max_len", str(a.max_len),
        "--dropout_rate", str(a.dropout), "--num_workers", "0", "--seed", str(a.seed),
        "--freeze", "--user_sim_func", "kd", "--alpha", "0.1", "--use_cross_att", "--no_cuda",
    ])
    args.output_dir = os.path.join(work, "saved")
    args.now_str = "timing"
    os.makedirs(args.output_dir, exist_ok=True)
    set_seed(args.seed)
    torch.autograd.set_detect_anomaly(a.anomaly == "on")
    logger = logging.getLogger("reference")
    writer = SimpleNamespace(add_scalar=lambda *_: None)
    device = torch.device("cpu")
    cwd = os.getcwd()
    os.chdir(work)  # the reference opens ./data/<dataset>/handled/*
    try:
        generator = Seq2SeqGeneratorAllUser(args, logger, device)
        trainer = SeqTrainer(args, logger, writer, device, generator)
        if variant == "base":
            # Its plain SASRec trains on the same loader; the similar-user fields go unread.
            trainer.model = SASRec_seq(trainer.user_num, trainer.item_num, device, args).to(device)
            trainer._set_optimizer()
        full = trainer.train_loader
        batches = len(full) if a.reference_batches is None else min(a.reference_batches, len(full))
        trainer.train_loader = FirstBatches(full, batches)
        seconds = []
        for epoch in range(a.epochs):
            start = time.perf_counter()
            trainer._train_one_epoch(epoch)
            seconds.append((time.perf_counter() - start) * len(full) / batches)
            part = "" if batches == len(full) else f" (from {batches} of its {len(full)} batches)"
            print(f"  reference {variant}: epoch {epoch + 1} {seconds[-1]:.1f} s{part}", flush=True)
    finally:
        os.chdir(cwd)
    return seconds, batches, len(full)


class FirstBatches:
    """The first `n` batches of a loader, drawn (and built) by it as in a whole epoch."""

    def __init__(self, loader, n):
        self.loader, self.n = loader, n

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.n)

    def __len__(self):
        return self.n


def time_ours(a, work, variant, defaults):
    out = os.path.join(work, f"ours-{variant}-{'defaults' if defaults else 'reference'}")
    cmd = [
        a.llmesr, "train", "--data", a.data, "--variant", variant,
        "--mode", "faithful", "--epochs", str(a.epochs), "--batch-size", str(a.batch_size),
        "--hidden", str(a.hidden), "--max-len", str(a.max_len), "--dropout", str(a.dropout),
        "--seed", str(a.seed), "--out", out, "--quiet",
    ]
    if variant == "llmesr":
        cmd += ["--semantic", a.semantic, "--teacher", "cached" if defaults else "fresh"]
    if defaults:
        cmd += ["--bucket"]
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    with open(os.path.join(out, "run.json"), encoding="utf-8") as f:
        run = json.load(f)
    seconds = [e["train_seconds"] for e in run["outcome"]["epochs"]]
    label = "our defaults" if defaults else "ours"
    for n, s in enumerate(seconds):
        print(f"  {label} {variant}: epoch {n + 1} {s:.1f} s", flush=True)
    return seconds


def machine():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", required=True, help="checkout of liuqidong07/LLM-ESR")
    ap.add_argument("--data", default="data/ml-1m", help="a RecBole dataset folder")
    ap.add_argument("--semantic", required=True, help="`llmesr embed` output for --data")
    ap.add_argument("--llmesr", default="target/release/llmesr")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128, help="the reference's experiments use 128")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=200)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--variants", default="llmesr,base")
    ap.add_argument("--anomaly", choices=["on", "off"], default="on",
                    help="autograd anomaly detection: on as the reference's main.py sets it, or off")
    ap.add_argument("--reference-batches", type=int,
                    help="time only the reference's first N batches of each epoch and scale to the "
                    "whole epoch (its per-batch cost is steady; an ML-1M epoch with the fresh "
                    "teacher takes it most of an hour on two cores)")
    ap.add_argument("--reference-only", action="store_true",
                    help="time the reference alone (e.g. once more with --anomaly off)")
    ap.add_argument("--report", help="write the rows as JSON here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    name = os.path.basename(os.path.normpath(a.data))
    items, similar, item_keys, user_keys = read_semantic(a.semantic)
    seqs = sequences(a.data, user_keys, item_keys)
    print(f"{name}: {len(seqs)} users, {len(item_keys)} items, "
          f"{sum(map(len, seqs))} interactions; {a.threads} threads, batch {a.batch_size}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        write_reference_layout(work, name, seqs, items, similar, a.hidden)
        for variant in a.variants.split(","):
            ref_epochs, timed, total = time_reference(a.reference, work, name, a, variant)
            ref = statistics.median(ref_epochs)
            if a.reference_only:
                print(f"  reference {variant}: {ref:.1f} s per epoch")
                continue
            ours = statistics.median(time_ours(a, work, variant, defaults=False))
            mine = statistics.median(time_ours(a, work, variant, defaults=True))
            rows.append({
                "what": "train-epoch", "dataset": name, "backbone": "sasrec", "variant": variant,
                "threads": a.threads, "reference_anomaly_detection": a.anomaly, "batch_size": a.batch_size, "epochs": a.epochs,
                "reference_s": round(ref, 2), "reference_batches_timed": timed,
                "batches_per_epoch": total, "ours_s": round(ours, 2),
                "ours_defaults_s": round(mine, 2), "ratio": round(ours / ref, 3),
                "ratio_defaults": round(mine / ref, 3), "torch": torch.__version__,
                "machine": machine(),
                "date": date.today().isoformat(),
            })
    print("\n| SASRec | reference s/epoch | ours | ratio | ours, defaults | ratio |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['reference_s']:.1f} | {r['ours_s']:.1f} | {r['ratio']:.2f} "
              f"| {r['ours_defaults_s']:.1f} | {r['ratio_defaults']:.2f} |")
    if a.report:
        tmp = a.report + ".partial"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
        os.replace(tmp, a.report)


if __name__ == "__main__":
    main()
