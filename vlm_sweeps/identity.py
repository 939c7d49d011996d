"""A job's identity: a short hash of its resolved config minus the keys that do not change its
result (paths, tracking, run-time knobs; the list lives in the config as `identity_exclude`).
Same config -> same signature, on any machine, from any working directory."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from vlm_sweeps.config import to_container


def _drop(tree: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.get(key, {})
        if not isinstance(tree, dict):
            return
    tree.pop(leaf, None)


def identity_dict(cfg: Any) -> dict:
    tree = to_container(cfg)
    for key in tree.get("identity_exclude", []):
        _drop(tree, key)
    return tree


def signature(cfg: Any) -> str:
    blob = json.dumps(identity_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists are kept as values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


# What the align stage's result depends on, group by group (the rest of the config is left out:
# the finetune epochs and hyperparameters, the optimization option's name and its finetune stage,
# benchmarks, eval). Every group is taken after `identity_exclude`, so what does not change a
# job's result (paths, run knobs, micro-batch sizes) does not change its align either.
#  encoder  backbones, image size and projector kind: the features, the trained projector's shape, the init order
#  resize   the align images' transform
#  llm      architecture (frozen, crossed by the gradients), id (weights, tokenizer at full scale), prompt format
#  scale    shapes (shrinks), vocab, max_seq_len, precision, pretrained, grad checkpointing, align
#           hyperparameters and align_epochs; only `scale.finetune` is left out
#  data     the align records (source, align_file, drop_text_only) and the synthetic world, which also
#           trains the tiny tokenizer; the mix's name and finetune_file are left out, so the paper's
#           mixes share one align, as in the paper (they all align on the same 558K captions)
#  stage    the align StageConf itself (which parts train); it is stage 0, so its batch order is seed + 0
#  seed     the random init of the tiny model (and of the projector at full scale) and the batch order
ALIGN_KEYS_DROPPED = {"scale": ("finetune",), "data": ("name", "finetune_file")}


def align_identity(cfg: Any) -> dict | None:
    """The part of the config the align stage's result depends on; None when the plan has no
    align stage first (single-stage plans)."""
    tree = identity_dict(cfg)
    stages = tree["optimization"]["stages"]
    if not stages or stages[0]["name"] != "align":
        return None
    picked = {key: tree[key] for key in ("encoder", "resize", "llm", "scale", "data", "seed")}
    for group, dropped in ALIGN_KEYS_DROPPED.items():
        picked[group] = {k: v for k, v in picked[group].items() if k not in dropped}
    picked["stage"] = stages[0]
    return picked


def align_signature(cfg: Any) -> str | None:
    """Short hash of `align_identity`: jobs with the same one can share one align checkpoint."""
    tree = align_identity(cfg)
    if tree is None:
        return None
    blob = json.dumps(tree, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
