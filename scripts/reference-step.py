#!/usr/bin/env python3
"""Write the training-step fixture of `tests/reference_step.rs`: one batch through the reference's
own LLM-ESR SASRec (https://github.com/liuqidong07/LLM-ESR, MIT), with its loss and every
parameter's gradient.

The model is small (30 items, 16-d, window 8, 12-d "language-model" vectors) and random: nothing in
the fixture comes from MovieLens or a trained model. Dropout is 0 so the step is deterministic;
everything else is the reference's training forward — `LLMESR_SASRec.forward(seq, pos, neg,
positions, sim_seq, sim_positions)`: the seq-to-seq BCE with one negative per position, plus 0.1 ×
the MSE between each user's representation and the detached mean of its 10 similar users'.
The Rust test loads the same weights into `SeqRec` (paper-faithful mode), runs `step_loss` on
the same batch, negatives and similar users, and compares the loss and the gradients.

    /tmp/torchenv/bin/python scripts/reference-step.py --reference PATH/TO/LLM-ESR \\
        --out tests/fixtures/reference-step.json
"""

import argparse
import json
import os
import pickle
import sys
import tempfile
from types import SimpleNamespace

import numpy as np
import torch

N_ITEMS, HIDDEN, MAX_LEN, LLM_DIM, N_USERS, BATCH, N_SIMILAR = 30, 16, 8, 12, 15, 4, 10


def ours(name):
    """The reference's parameter name → ours (None: the reference builds it and never reads it)."""
    if name.startswith("projector") or name == "item_emb.weight":
        return None
    simple = {
        "id_item_emb.weight": "item_emb.weight",
        "llm_item_emb.weight": "llm_emb.weight",
        "pos_emb.weight": "pos_emb.weight",
        "backbone.last_layernorm.weight": "ln_last.weight",
        "backbone.last_layernorm.bias": "ln_last.bias",
    }
    if name in simple:
        return simple[name]
    if name.startswith("adapter."):
        return name
    for view in ("llm2id", "id2llm"):
        for theirs, mine in (("linear_q", "q"), ("linear_k", "k"), ("linear_v", "v"), ("linear_output", "out")):
            if name.startswith(f"{view}.{theirs}."):
                return f"{view}.{mine}.{name.rsplit('.', 1)[1]}"
    parts = name.split(".")
    i = parts[2]
    kinds = {
        "attention_layernorms": "ln_attn",
        "forward_layernorms": "ln_ffn",
    }
    if parts[1] in kinds:
        return f"blocks.{i}.{kinds[parts[1]]}.{parts[3]}"
    if parts[1] == "forward_layers":
        return f"blocks.{i}.{ {'conv1': 'ff1', 'conv2': 'ff2'}[parts[3]] }.{parts[4]}"
    if parts[1] == "attention_layers":
        return f"blocks.{i}.attn.{'.'.join(parts[3:])}"  # in_proj is split below
    raise SystemExit(f"no counterpart for reference parameter {name}")


def to_ours(name, tensor):
    """(our name, array) pairs for one reference parameter, in our shapes and row counts."""
    mine = ours(name)
    if mine is None:
        return []
    a = tensor.detach().numpy().astype(np.float32)
    if mine in ("item_emb.weight", "llm_emb.weight"):
        return [(mine, a[: N_ITEMS + 1])]  # the reference's extra last row is BERT4Rec's mask
    if mine == "pos_emb.weight":
        return [(mine, a[: MAX_LEN + 1])]  # it keeps max_len + 100 rows; positions reach max_len
    if mine.endswith(".ff1.weight") or mine.endswith(".ff2.weight"):
        return [(mine, a[:, :, 0])]
    if ".attn.in_proj_" in mine:
        prefix, kind = mine.rsplit(".in_proj_", 1)
        return [(f"{prefix}.{x}.{kind}", part) for x, part in zip("qkv", np.split(a, 3, axis=0))]
    if ".attn.out_proj." in mine:
        return [(mine.replace("out_proj", "out"), a)]
    return [(mine, a)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", required=True, help="checkout of liuqidong07/LLM-ESR")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.reference))
    from models.LLMESR import LLMESR_SASRec

    rng = np.random.default_rng(a.seed)
    torch.manual_seed(a.seed)
    # Users' full sequences (training part + validation + test item); some longer than the window.
    sequences = [rng.integers(1, N_ITEMS + 1, size=int(rng.integers(5, 15))).tolist() for _ in range(N_USERS)]
    similar = [[int(v) for v in rng.permutation([x for x in range(N_USERS) if x != u])[:N_SIMILAR]] for u in range(N_USERS)]
    batch_users = [0, 3, 7, 11]

    args = SimpleNamespace(
        hidden_size=HIDDEN, max_len=MAX_LEN, dropout_rate=0.0, trm_num=2, num_heads=1,
        dataset="fixture", use_cross_att=True, freeze=True, alpha=0.1, user_sim_func="kd",
        item_reg=False,
    )
    with tempfile.TemporaryDirectory() as work:
        handled = os.path.join(work, "data", "fixture", "handled")
        os.makedirs(handled)
        with open(os.path.join(handled, "itm_emb_np.pkl"), "wb") as f:
            pickle.dump(rng.normal(size=(N_ITEMS, LLM_DIM)).astype(np.float32), f)
        with open(os.path.join(handled, "pca64_itm_emb_np.pkl"), "wb") as f:
            pickle.dump(rng.normal(size=(N_ITEMS, HIDDEN)).astype(np.float32) * 0.3, f)
        cwd = os.getcwd()
        os.chdir(work)
        try:
            model = LLMESR_SASRec(N_USERS, N_ITEMS, "cpu", args)
        finally:
            os.chdir(cwd)
    # Move every bias and LayerNorm off its initial value so that they matter.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.2)

    def window(seq):
        """The reference's left-padded window and positions (`_get_user_seq`)."""
        kept = seq[-MAX_LEN:]
        s = [0] * (MAX_LEN - len(kept)) + kept
        p = [0] * (MAX_LEN - len(kept)) + list(range(1, len(kept) + 1))
        return s, p

    seq, pos, neg, positions, sim_seq, sim_positions = [], [], [], [], [], []
    for u in batch_users:
        train = sequences[u][:-2]
        s, p = window(train[:-1])
        targets = train[1:][-MAX_LEN:]
        t = [0] * (MAX_LEN - len(targets)) + targets
        n = [0 if x == 0 else int(rng.choice([i for i in range(1, N_ITEMS + 1) if i not in train])) for x in t]
        seq.append(s), positions.append(p), pos.append(t), neg.append(n)
        ss, sp = zip(*(window(sequences[v][:-2][:-1]) for v in similar[u]))
        sim_seq.append(list(ss)), sim_positions.append(list(sp))

    T = lambda x: torch.tensor(x, dtype=torch.long)
    model.train()
    loss = model(T(seq), T(pos), T(neg), T(positions), sim_seq=T(sim_seq), sim_positions=T(sim_positions))
    loss.backward()

    weights, grads = {}, {}
    for name, p in model.named_parameters():
        for mine, arr in to_ours(name, p):
            weights[mine] = arr
        if p.grad is not None:
            for mine, arr in to_ours(name, p.grad):
                grads[mine] = arr
    fixture = {
        "source": "scripts/reference-step.py against liuqidong07/LLM-ESR (LLMESR_SASRec, dropout 0)",
        "n_items": N_ITEMS, "hidden": HIDDEN, "max_len": MAX_LEN, "llm_dim": LLM_DIM,
        "alpha": 0.1, "n_similar": N_SIMILAR,
        "sequences": sequences, "similar": similar, "batch_users": batch_users,
        "positives": pos, "negatives": neg,
        "loss": float(loss.detach()),
        "weights": {k: {"shape": list(v.shape), "data": [round(float(x), 9) for x in v.ravel()]} for k, v in sorted(weights.items())},
        "grads": {k: {"shape": list(v.shape), "data": [float(x) for x in v.ravel()]} for k, v in sorted(grads.items())},
    }
    tmp = a.out + ".partial"
    with open(tmp, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
    os.replace(tmp, a.out)
    print(f"loss {float(loss.detach()):.6f}; {len(weights)} weights, {len(grads)} gradients -> {a.out}")


if __name__ == "__main__":
    main()
