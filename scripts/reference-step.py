#!/usr/bin/env python3
"""Write a training-step fixture of `tests/integration/reference_step.rs`: one batch through the reference's
own LLM-ESR model (https://github.com/liuqidong07/LLM-ESR, MIT) for one backbone, with its loss and
every parameter's gradient.

The model is small (30 items, 16-d, window 8, 12-d "language-model" vectors) and random: nothing in
the fixture comes from MovieLens or a trained model. Dropout is 0 so the step is deterministic;
everything else is the reference's training forward — `LLMESR_<backbone>.forward(seq, pos, neg,
positions, sim_seq, sim_positions)`: the backbone's BCE with one negative per target (SASRec:
every position; GRU4Rec: the last; BERT4Rec: the masked ones), plus 0.1 × the MSE between each
user's representation and the detached mean of its 10 similar users'.
The Rust test loads the same weights into `SeqRec` (paper-faithful mode), runs `step_loss` on
the same batch, negatives and similar users, and compares the loss and the gradients.

    for b in sasrec gru4rec bert4rec; do
      /tmp/torchenv/bin/python scripts/reference-step.py --reference PATH/TO/LLM-ESR \\
        --backbone $b --out tests/fixtures/reference-step-$b.json
    done
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

from reference_names import to_ours

N_ITEMS, HIDDEN, MAX_LEN, LLM_DIM, N_USERS, N_SIMILAR = 30, 16, 8, 12, 15, 10


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", required=True, help="checkout of liuqidong07/LLM-ESR")
    ap.add_argument("--out", required=True)
    ap.add_argument("--backbone", choices=["sasrec", "gru4rec", "bert4rec"], default="sasrec")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.reference))
    from models.LLMESR import LLMESR_Bert4Rec, LLMESR_GRU4Rec, LLMESR_SASRec

    cls = {"sasrec": LLMESR_SASRec, "gru4rec": LLMESR_GRU4Rec, "bert4rec": LLMESR_Bert4Rec}[a.backbone]

    rng = np.random.default_rng(a.seed)
    torch.manual_seed(a.seed)
    # Users' full sequences (training part + validation + test item); some longer than the window.
    sequences = [rng.integers(1, N_ITEMS + 1, size=int(rng.integers(5, 15))).tolist() for _ in range(N_USERS)]
    similar = [[int(v) for v in rng.permutation([x for x in range(N_USERS) if x != u])[:N_SIMILAR]] for u in range(N_USERS)]
    batch_users = [0, 3, 7, 11]

    args = SimpleNamespace(
        hidden_size=HIDDEN, max_len=MAX_LEN, dropout_rate=0.0, trm_num=2, num_heads=1, num_layers=1,
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
            model = cls(N_USERS, N_ITEMS, "cpu", args)
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

    def negative(train):
        return int(rng.choice([i for i in range(1, N_ITEMS + 1) if i not in train]))

    mask_token = N_ITEMS + 1
    seq, pos, neg, positions, sim_seq, sim_positions = [], [], [], [], [], []
    for u in batch_users:
        train = sequences[u][:-2]
        if a.backbone == "bert4rec":
            # A cloze sample as the reference's train set draws one: masked positions become the
            # mask token (or a random item, or stay) and carry their item as the target.
            tokens, labels = [], []
            for k, x in enumerate(train):
                r = rng.random()
                if r < 0.6 or k == len(train) - 1:
                    kind = rng.random()
                    tokens.append(mask_token if kind < 0.8 else int(rng.integers(1, N_ITEMS + 1)) if kind < 0.9 else x)
                    labels.append(x)
                else:
                    tokens.append(x)
                    labels.append(0)
            tokens, labels = tokens[-MAX_LEN:], labels[-MAX_LEN:]
            pad = MAX_LEN - len(tokens)
            s = [0] * pad + tokens
            p = [0] * pad + list(range(1, len(tokens) + 1))
            t = [0] * pad + labels
            n = [0 if x == 0 else negative(train) for x in t]
        else:
            s, p = window(train[:-1])
            if a.backbone == "gru4rec":
                t, n = train[-1], [negative(train)]
            else:
                targets = train[1:][-MAX_LEN:]
                t = [0] * (MAX_LEN - len(targets)) + targets
                n = [0 if x == 0 else negative(train) for x in t]
        seq.append(s), positions.append(p), pos.append(t), neg.append(n)
        ss, sp = zip(*(window(sequences[v][:-2][:-1]) for v in similar[u]))
        sim_seq.append(list(ss)), sim_positions.append(list(sp))

    T = lambda x: torch.tensor(x, dtype=torch.long)
    model.train()
    loss = model(T(seq), T(pos), T(neg), T(positions), sim_seq=T(sim_seq), sim_positions=T(sim_positions))
    loss.backward()
    flat = lambda rows: [int(x) for r in rows for x in (r if isinstance(r, list) else [r])]

    weights, grads = {}, {}
    bert = a.backbone == "bert4rec"
    # Our row counts: only BERT4Rec keeps the mask-token row, and training positions reach max_len
    # (BERT4Rec's predict one more).
    table_rows = {"item_emb.weight": N_ITEMS + 1 + bert, "llm_emb.weight": N_ITEMS + 1 + bert,
                  "pos_emb.weight": MAX_LEN + 1 + bert}
    arrays = lambda t: t.detach().numpy().astype(np.float32)
    for name, p in model.named_parameters():
        for mine, arr in to_ours(name, arrays(p), a.backbone, True, table_rows):
            weights[mine] = arr
        if p.grad is not None:
            for mine, arr in to_ours(name, arrays(p.grad), a.backbone, True, table_rows):
                grads[mine] = arr
    fixture = {
        "source": f"scripts/reference-step.py against liuqidong07/LLM-ESR ({cls.__name__}, dropout 0)",
        "backbone": a.backbone,
        "n_items": N_ITEMS, "hidden": HIDDEN, "max_len": MAX_LEN, "llm_dim": LLM_DIM,
        "alpha": 0.1, "n_similar": N_SIMILAR,
        "sequences": sequences, "similar": similar, "batch_users": batch_users,
        "inputs": seq, "positives": flat(pos), "negatives": flat(neg),
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
