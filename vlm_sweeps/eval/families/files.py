"""Reading benchmark files under the data root: one error type for missing files, deterministic
slim subsets.

Every family module keeps a table of the paths it expects relative to `LoadContext.root`; a path
that is not there raises `MissingBenchmarkFile`, which names the benchmark, the path and what to
download, so a harness can report it and go on with the other benchmarks.
"""

from __future__ import annotations

import json
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


def require_images(benchmark: str, paths: Sequence[str], hint: str) -> None:
    """Fail on the first missing image, saying how many of the selected ones are missing."""
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        more = f" ({len(missing)} of {len(paths)} selected images are missing)" if len(missing) > 1 else ""
        raise MissingBenchmarkFile(benchmark, Path(missing[0]), hint + more)


def select_subset(
    records: Sequence[T], max_examples: int | None, seed: int, group: Callable[[T], Hashable] | None = None
) -> list[T]:
    """A deterministic slim subset of `records`, in file order.

    Each group (e.g. POPE's three splits; one group when `group` is None) is shuffled with `seed`,
    then the groups are interleaved round-robin and the first `max_examples` kept: groups stay
    balanced, and a smaller subset is always a prefix of a larger one (the 1,024-example slim set
    lies inside the 16,384 one), as in Prismatic's slim datasets. None keeps everything.
    """
    if max_examples is None or max_examples >= len(records):
        return list(records)
    if max_examples < 0:
        raise ValueError(f"max_examples must be None or >= 0, got {max_examples}")
    groups: dict[Hashable, list[int]] = {}
    for i, record in enumerate(records):
        groups.setdefault(group(record) if group else None, []).append(i)
    rng = random.Random(seed)
    shuffled = []
    for key in groups:  # insertion order: deterministic
        indices = groups[key][:]
        rng.shuffle(indices)
        shuffled.append(indices)
    order: list[int] = []
    for rank in range(max(len(g) for g in shuffled)):
        order.extend(g[rank] for g in shuffled if rank < len(g))
    return [records[i] for i in sorted(order[:max_examples])]


def normalise_xyxy(box: Sequence[float], width: float, height: float) -> tuple[float, float, float, float]:
    """Pixel `[x1, y1, x2, y2]` -> fractions of the image size, clipped to 0..1."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    x1, y1, x2, y2 = (float(v) for v in box)
    return (_clip01(x1 / width), _clip01(y1 / height), _clip01(x2 / width), _clip01(y2 / height))


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, value))


def xywh_to_xyxy(box: Sequence[float]) -> tuple[float, float, float, float]:
    """COCO `[x, y, w, h]` -> `[x1, y1, x2, y2]`."""
    x, y, w, h = (float(v) for v in box)
    return (x, y, x + w, y + h)
