"""The one map between the reference LLM-ESR's parameters and this project's, in both directions.

Shared by `reference-parity.py` (our trained weights into the reference's model) and
`reference-step.py` (the reference's weights and gradients into a fixture for our model), so the
two checks cannot drift apart on what corresponds to what.
"""

import numpy as np

# Our tables whose row count differs from the reference's: it keeps a mask-token row in every item
# table and max_len + 100 position rows.
TABLES = ("item_emb.weight", "llm_emb.weight", "pos_emb.weight")


def counterpart(name, backbone, semantic):
    """Our parameter names for one of the reference's, in order; [] for one it builds and never reads.

    `semantic`: the reference model is a dual-view `LLMESR_*` rather than a base backbone.
    """
    if name.startswith("projector"):
        return []  # the distillation projectors are built and never read
    if name == "item_emb.weight":
        # The dual-view models inherit the single-view table from the backbone's class, unused.
        return [] if semantic else ["item_emb.weight"]
    if backbone == "gru4rec":
        if name == "pos_emb.weight":
            return []  # built by the dual-view GRU4Rec, never read
        if name.startswith("backbone.gru.weight_"):
            return ["gru." + name.rsplit(".", 1)[1].removesuffix("_l0")]
    simple = {
        "id_item_emb.weight": "item_emb.weight",
        "llm_item_emb.weight": "llm_emb.weight",
        "pos_emb.weight": "pos_emb.weight",
        "backbone.last_layernorm.weight": "ln_last.weight",
        "backbone.last_layernorm.bias": "ln_last.bias",
    }
    if name in simple:
        return [simple[name]]
    if name.startswith("adapter."):
        return [name]
    leaf = name.rsplit(".", 1)[1]
    for view in ("llm2id", "id2llm"):
        for theirs, mine in (("linear_q", "q"), ("linear_k", "k"), ("linear_v", "v"), ("linear_output", "out")):
            if name.startswith(f"{view}.{theirs}."):
                return [f"{view}.{mine}.{leaf}"]
    parts = name.split(".")
    if len(parts) >= 4 and parts[0] == "backbone":
        block = f"blocks.{parts[2]}"
        norms = {"attention_layernorms": "ln_attn", "forward_layernorms": "ln_ffn"}
        if parts[1] in norms:
            return [f"{block}.{norms[parts[1]]}.{leaf}"]
        if parts[1] == "forward_layers":
            return [f"{block}.{ {'conv1': 'ff1', 'conv2': 'ff2'}[parts[3]] }.{leaf}"]
        if parts[1] == "attention_layers":
            if parts[3].startswith("in_proj_"):
                # PyTorch's MultiheadAttention keeps q, k and v stacked in one matrix.
                kind = parts[3].removeprefix("in_proj_")
                return [f"{block}.attn.{x}.{kind}" for x in "qkv"]
            if parts[3] == "out_proj":
                return [f"{block}.attn.out.{leaf}"]
    raise SystemExit(f"no counterpart for reference parameter {name}")


def _is_conv(mine):
    # The reference's feed-forward layers are 1-wide Conv1d: [out, in, 1] where ours is [out, in].
    return mine.endswith(".ff1.weight") or mine.endswith(".ff2.weight")


def to_ours(name, array, backbone, semantic, table_rows):
    """(our name, array) pairs for one reference parameter (or its gradient), in our shapes.

    `table_rows`: our row count of each table in `TABLES` the model has.
    """
    names = counterpart(name, backbone, semantic)
    if len(names) > 1:
        return list(zip(names, np.split(array, len(names), axis=0)))
    out = []
    for mine in names:
        if mine in TABLES:
            out.append((mine, array[: table_rows[mine]]))
        elif _is_conv(mine):
            out.append((mine, array[:, :, 0]))
        else:
            out.append((mine, array))
    return out


def from_ours(name, weights, backbone, semantic, shape):
    """One reference parameter of `shape` filled from our `weights` (name → array), or None for
    one the reference builds and never reads.

    Tables are padded with zeros (or cut) to the reference's row count; those rows are never read
    by a model that matches ours. Stops if a parameter the reference reads has no value in `weights`.
    """
    names = counterpart(name, backbone, semantic)
    if not names:
        return None
    absent = [n for n in names if n not in weights]
    if absent:
        raise SystemExit(f"reference parameter {name} needs {absent}, which the run does not have")
    if len(names) > 1:
        return np.concatenate([weights[n] for n in names], axis=0)
    (mine,) = names
    a = weights[mine]
    if mine in TABLES:
        out = np.zeros((shape[0], a.shape[1]), dtype=np.float32)
        k = min(shape[0], a.shape[0])
        out[:k] = a[:k]
        return out
    if _is_conv(mine):
        return a[:, :, None]
    return a
