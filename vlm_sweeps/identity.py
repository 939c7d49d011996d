"""A job's identity: a short hash of its resolved config minus the keys that do not change its
result (paths, tracking, run-time knobs; the list lives in the config as `identity_exclude`).
Same config -> same signature, on any machine, from any working directory."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from vlm_sweeps.config import to_container
from vlm_sweeps.data.digest import records_digests


def _drop(tree: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.get(key, {})
        if not isinstance(tree, dict):
            return
    tree.pop(leaf, None)


def identity_dict(cfg: Any) -> dict:
    """The resolved config minus `identity_exclude`, plus `data_content`: the digest of each records
    file a real mix trains on (data/digest.py; absent for synthetic data, made from the config)."""
    tree = to_container(cfg)
    content = records_digests(tree)
    for key in tree.get("identity_exclude", []):
        _drop(tree, key)
    if content:
        tree["data_content"] = content
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


# What the align stage's result cannot depend on (a denylist: a new axis, group or field is part
# of the align signature by default). Taken after `identity_exclude`, so what does not change a
# job's result (paths, run knobs, micro-batch sizes) does not change its align either.
#  epochs, scale.finetune   the finetune stage's passes and hyperparameters
#  optimization             the option's name and its later stages; stage 0 itself (which parts the
#                           align trains) is kept under `stage`, and its batch order is seed + 0
#  data.name, data.finetune_file
#                           the mix's name and its finetune records: the paper's mixes share one
#                           align, as in the paper (they all align on the same 558K captions)
#  benchmarks, eval         evaluation, after training
# Everything else stays: encoder (backbones, image size, projector kind), resize (the align images'
# transform), llm (architecture, id, prompt format), scale (shapes, vocab, precision, align
# hyperparameters, align_epochs), data (align records, the synthetic world that also trains the
# tiny tokenizer), seed (the random init and the batch order), and any new axis.
ALIGN_EXCLUDE: tuple[str, ...] = ("epochs", "scale.finetune", "optimization", "data.name", "data.finetune_file",
                                  "benchmarks", "eval")


def align_identity(cfg: Any) -> dict | None:
    """The part of the config the align stage's result depends on; None when the plan has no
    align stage first (single-stage plans)."""
    tree = identity_dict(cfg)
    stages = tree["optimization"]["stages"]
    if not stages or stages[0]["name"] != "align":
        return None
    for key in ALIGN_EXCLUDE:
        _drop(tree, key)
    if "data_content" in tree:  # the align stage reads its own records alone
        tree["data_content"] = {k: v for k, v in tree["data_content"].items() if k == "align"}
    tree["stage"] = stages[0]
    return tree


def align_signature(cfg: Any) -> str | None:
    """Short hash of `align_identity`: jobs with the same one can share one align checkpoint."""
    tree = align_identity(cfg)
    if tree is None:
        return None
    blob = json.dumps(tree, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
