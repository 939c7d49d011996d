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
