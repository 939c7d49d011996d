"""Reading benchmark files under the data root: one error type for missing files, vlm-evaluation's
slim subsets.

Every family module keeps a table of the paths it expects relative to `LoadContext.root`; a path
that is not there raises `MissingBenchmarkFile`, which names the benchmark, the path and what to
download, so a harness can report it and go on with the other benchmarks.
"""

from __future__ import annotations

import builtins
import json
import pickle
import random
from pathlib import Path
from typing import Any, Callable, Hashable, Sequence, TypeVar

T = TypeVar("T")


class MissingBenchmarkFile(FileNotFoundError):
    """A file a benchmark needs is not under the data root."""

    def __init__(self, benchmark: str, path: Path, hint: str) -> None:
        self.benchmark, self.path, self.hint = benchmark, Path(path), hint
        super().__init__(f"benchmark {benchmark!r}: missing {path}. {hint}")


def require(benchmark: str, path: Path, hint: str) -> Path:
    """`path` if it exists, else `MissingBenchmarkFile` with `hint` (what to download, where)."""
    if not path.exists():
        raise MissingBenchmarkFile(benchmark, path, hint)
    return path


def read_json(benchmark: str, path: Path, hint: str) -> Any:
    with require(benchmark, path, hint).open(encoding="utf-8") as f:
        return json.load(f)


def read_jsonl(benchmark: str, path: Path, hint: str) -> list[dict[str, Any]]:
    """One JSON object per non-empty line (POPE's `.json` files and VSR's `.jsonl` are such)."""
    with require(benchmark, path, hint).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# The only globals a plain-data pickle may name: Python 2 and 3 spellings of the set types (protocols
# 0-3 pickle a set by reference to its class). Containers, strings and numbers need no global at all.
_PLAIN_GLOBALS = {(m, n) for m in ("builtins", "__builtin__") for n in ("set", "frozenset")}


class _PlainDataUnpickler(pickle.Unpickler):
    """An unpickler that builds plain data only: dicts, lists, tuples, sets, strings, bytes, numbers,
    booleans, None. Every other global (so every class, function, `copy_reg._reconstructor`, and the
    REDUCE / BUILD / NEWOBJ / INST / OBJ opcodes that need one) is refused before anything runs, which
    is what makes it safe to open a downloaded pickle (the pickle docs' "Restricting Globals")."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PLAIN_GLOBALS:
            return getattr(builtins, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: only plain containers and numbers are read from pickles"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing a persistent id: only plain containers and numbers are read")


def read_plain_pickle(benchmark: str, path: Path, hint: str) -> Any:
    """A pickle of plain data, such as REFER's `refs(unc).p` as released (a Python 2 pickle of a list
    of dicts), read through `_PlainDataUnpickler`; a pickle that names any class fails with a
    ValueError that says so. Python 2 byte strings are decoded as UTF-8 (ASCII, which REFER's
    strings are, reads the same as with the reference's default)."""
    with require(benchmark, path, hint).open("rb") as f:
        try:
            return _PlainDataUnpickler(f, encoding="utf-8").load()
        except (pickle.UnpicklingError, EOFError, UnicodeDecodeError) as err:
            raise ValueError(f"benchmark {benchmark!r}: {path} is not a plain-data pickle ({err})") from err


def require_images(benchmark: str, paths: Sequence[str], hint: str) -> None:
    """Fail on the first missing image, saying how many of the selected ones are missing."""
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        more = f" ({len(missing)} of {len(paths)} selected images are missing)" if len(missing) > 1 else ""
        raise MissingBenchmarkFile(benchmark, Path(missing[0]), hint + more)


# vlm-evaluation builds every slim set with `Random(21).shuffle(ids)` (`build_*_indices(seed=21)`).
SLIM_SEED = 21


def slim_order(n: int, seed: int = SLIM_SEED) -> list[int]:
    """Positions 0..n-1 in the order vlm-evaluation's `Random(seed).shuffle(all_qids)` puts n ids
    (the permutation depends only on n and the seed, not on the ids)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def select_subset(
    records: Sequence[T], max_examples: int | None, group: Callable[[T], Hashable] | None = None,
    *, order: Sequence[int] | None = None,
) -> list[T]:
    """vlm-evaluation's slim set of `records` (in file order, as its `build_*_indices` index them),
    returned in file order.

    Without `group`: the first `max_examples` ids of the shuffled order (`all_qids[:n_slim]`). With
    `group` (POPE's splits, TallyQA's simple/complex, AI2D's val/test, OCID-Ref's clutter levels):
    the first `max_examples` of *each* group in the shuffled order, as those builders do, so a slim-N
    set holds N examples per group. A smaller set always lies inside a larger one. `order` replaces
    the shuffle of `len(records)` positions (RefCOCO*: one shuffle over three datasets). None keeps
    everything.
    """
    if max_examples is None:
        return list(records)
    if max_examples < 0:
        raise ValueError(f"max_examples must be None or >= 0, got {max_examples}")
    order = slim_order(len(records)) if order is None else order
    if group is None:
        picked = list(order[:max_examples])
    else:
        counts: dict[Hashable, int] = {}
        picked = []
        for i in order:
            key = group(records[i])
            if counts.get(key, 0) < max_examples:
                counts[key] = counts.get(key, 0) + 1
                picked.append(i)
    return [records[i] for i in sorted(picked)]


def xywh_to_xyxy(box: Sequence[float]) -> tuple[float, float, float, float]:
    """COCO `[x, y, w, h]` -> `[x1, y1, x2, y2]`."""
    x, y, w, h = (float(v) for v in box)
    return (x, y, x + w, y + h)
