#!/usr/bin/env python3
"""Check a trained run against the reference implementation of LLM-ESR, score for score.

The reference (https://github.com/liuqidong07/LLM-ESR, MIT) is PyTorch code that this project
does not ship or copy. This script builds the reference's own model classes from a checkout of
it, loads the weights of one of our `--mode faithful` runs into them, and compares the scores
the reference's `predict` gives every item with the scores `llmesr recommend` gives from the
run's f32 bundle, over random sessions of several lengths (short ones, ones that fill the
200-item window exactly, and longer ones that are cut). A match says the faithful model *is*
the reference's model — cross-attention, shared backbone, concatenation, positions, padding
quirks and all — and that export and inference keep it.

A developer tool, not part of the test suite: it needs PyTorch, which CI does not install.

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy safetensors
    llmesr train --data data/ml-100k --backbone sasrec --variant llmesr --mode faithful \\
        --semantic artifacts/semantic/ml-100k.safetensors --epochs 3 --out /tmp/parity/sasrec
    llmesr export --run /tmp/parity/sasrec --out /tmp/parity/sasrec.bundle
    /tmp/torchenv/bin/python scripts/reference-parity.py --reference PATH/TO/LLM-ESR \\
        --run /tmp/parity/sasrec --bundle /tmp/parity/sasrec.bundle

Exit status 0 when every session's scores agree within --tol and the top-10 lists are the same.
"""

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
from types import SimpleNamespace

import numpy as np
import torch
from safetensors.numpy import load_file

from reference_names import from_ours


def reference_model(ref_dir, run, weights, workdir):
    """The reference's model class for the run's backbone and variant, built as its main.py would."""
    sys.path.insert(0, ref_dir)
    model_cfg = run["model"]
    backbone = model_cfg["backbone"]
    semantic = model_cfg.get("semantic")
    n_items = model_cfg["n_items"]
    args = SimpleNamespace(
        hidden_size=model_cfg["hidden"],
        max_len=model_cfg["max_len"],
        dropout_rate=model_cfg["dropout"],
        trm_num=model_cfg["n_layers"],
        num_layers=model_cfg["n_layers"],
        num_heads=model_cfg["n_heads"],
        dataset="parity",
        use_cross_att=bool(semantic and semantic["cross_attention"]),
        freeze=True,
        alpha=run["train"]["distill_weight"],
        user_sim_func="kd",
        item_reg=False,
        mask_prob=run["train"]["mask_prob"],
    )
    if semantic:
        if semantic["views"] != "both" or semantic.get("cross_residual"):
            raise SystemExit("only the published dual-view model exists in the reference")
        # The reference reads both item tables from pickles, without the padding row, at
        # construction; our trained tables overwrite them below anyway.
        handled = os.path.join(workdir, "data", "parity", "handled")
        os.makedirs(handled, exist_ok=True)
        with open(os.path.join(handled, "itm_emb_np.pkl"), "wb") as f:
            pickle.dump(weights["llm_emb.weight"][1 : n_items + 1], f)
        with open(os.path.join(handled, "pca64_itm_emb_np.pkl"), "wb") as f:
            pickle.dump(weights["item_emb.weight"][1 : n_items + 1], f)
        from models.LLMESR import LLMESR_Bert4Rec, LLMESR_GRU4Rec, LLMESR_SASRec

        cls = {"sasrec": LLMESR_SASRec, "gru4rec": LLMESR_GRU4Rec, "bert4rec": LLMESR_Bert4Rec}
    else:
        from models.Bert4Rec import Bert4Rec
        from models.GRU4Rec import GRU4Rec
        from models.SASRec import SASRec_seq

        cls = {"sasrec": SASRec_seq, "gru4rec": GRU4Rec, "bert4rec": Bert4Rec}
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        model = cls[backbone](1, n_items, "cpu", args)
    finally:
        os.chdir(cwd)
    return model


def state_dict(model, weights, run):
    """Our weights under the reference's parameter names (stops if one it reads has no value)."""
    backbone, semantic = run["model"]["backbone"], bool(run["model"].get("semantic"))
    sd = {}
    for k, v in model.state_dict().items():
        ours = from_ours(k, weights, backbone, semantic, tuple(v.shape))
        if ours is None:
            continue
        if tuple(v.shape) != ours.shape:
            raise SystemExit(f"{k}: reference shape {tuple(v.shape)}, ours {ours.shape}")
        sd[k] = ours
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}


def reference_scores(model, session, n_items, max_len):
    """Scores of items 1..n the way the reference's evaluation asks for them."""
    kept = session[-max_len:]
    seq = np.zeros(max_len, dtype=np.int64)
    seq[max_len - len(kept) :] = kept
    positions = np.zeros(max_len, dtype=np.int64)
    positions[max_len - len(kept) :] = np.arange(1, len(kept) + 1)
    items = torch.arange(1, n_items + 1).unsqueeze(0)
    with torch.no_grad():
        logits = model.predict(
            torch.from_numpy(seq).unsqueeze(0), items, torch.from_numpy(positions).unsqueeze(0)
        )
    return logits.squeeze(0).numpy()


def our_scores(llmesr, bundle, session, n_items):
    out = subprocess.run(
        [llmesr, "recommend", "--bundle", bundle, "--session", ",".join(map(str, session)),
         "--k", str(n_items), "--include-session", "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    scores = np.full(n_items, np.nan, dtype=np.float64)
    for rec in json.loads(out):
        scores[rec["id"] - 1] = rec["score"]
    if np.isnan(scores).any():
        raise SystemExit("llmesr recommend did not score every item")
    return scores


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", required=True, help="checkout of liuqidong07/LLM-ESR")
    ap.add_argument("--run", required=True, help="a run folder trained with --mode faithful")
    ap.add_argument("--bundle", required=True, help="the run exported with --quant f32")
    ap.add_argument("--llmesr", default="target/release/llmesr")
    ap.add_argument("--lengths", default="1,2,7,50,199,200,201,260")
    ap.add_argument("--per-length", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()

    with open(os.path.join(a.run, "run.json")) as f:
        run = json.load(f)
    if run["model"]["mode"] != "faithful":
        raise SystemExit("the reference is the paper-faithful model: train the run with --mode faithful")
    weights = load_file(os.path.join(a.run, "checkpoint.safetensors"))
    n_items, max_len = run["model"]["n_items"], run["model"]["max_len"]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as workdir:
        model = reference_model(os.path.abspath(a.reference), run, weights, workdir)
    model.load_state_dict(state_dict(model, weights, run), strict=False)
    model.eval()

    rng = np.random.default_rng(a.seed)
    worst, worst_rel, failures = 0.0, 0.0, 0
    for length in map(int, a.lengths.split(",")):
        for _ in range(a.per_length):
            session = rng.integers(1, n_items + 1, size=length).tolist()
            theirs = reference_scores(model, session, n_items, max_len)
            ours = our_scores(a.llmesr, a.bundle, session, n_items)
            diff = float(np.max(np.abs(theirs - ours)))
            rel = diff / max(float(np.max(np.abs(theirs))), 1e-30)
            same_top = list(np.argsort(-theirs, kind="stable")[:10]) == list(
                np.argsort(-ours, kind="stable")[:10]
            )
            worst = max(worst, diff)
            worst_rel = max(worst_rel, rel)
            ok = diff <= a.tol and same_top
            failures += not ok
            print(f"length {length:4d}: max |Δscore| {diff:.2e} ({rel:.1e} of the largest), score range "
                  f"[{theirs.min():.3f}, {theirs.max():.3f}], top-10 {'same' if same_top else 'DIFFERENT'}"
                  f"{'' if ok else '  <-- mismatch'}")
    m = run["model"]
    kind = f"{m['backbone']} {'llmesr' if m.get('semantic') else 'base'}"
    print(f"{kind}: worst max |Δscore| {worst:.2e} ({worst_rel:.1e} of the largest score) over all "
          f"sessions; {failures} mismatching session(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
