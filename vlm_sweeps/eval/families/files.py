"""Reading benchmark files under the data root: one error type for missing files, vlm-evaluation's
slim subsets.

Every family module keeps a table of the paths it expects relative to `LoadContext.root`; a path
that is not there raises `MissingBenchmarkFile`, which names the benchmark, the path and what to
download, so a harness can report it and go on with the other benchmarks.
"""

from __future__ import annotations

import builtins
import io
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


# How each opcode's argument is laid out, for `_check_pickle`: a count >= 0 of fixed bytes, or one of these.
_UNKNOWN, _STOP, _LINE, _TWO_LINES, _PUT, _LONG_BINPUT, _FRAME = -1, -2, -3, -4, -5, -6, -7
_COUNT1, _COUNT4, _COUNT8, _COUNT4_SIGNED = -9, -12, -16, -20  # a little-endian count, then that many bytes


def _opcode_layout() -> list[int]:
    import pickletools

    special = {"STOP": _STOP, "PUT": _PUT, "LONG_BINPUT": _LONG_BINPUT, "FRAME": _FRAME, "GLOBAL": _TWO_LINES,
               "INST": _TWO_LINES}
    counted = {pickletools.TAKEN_FROM_ARGUMENT1: _COUNT1, pickletools.TAKEN_FROM_ARGUMENT4: _COUNT4_SIGNED,
               pickletools.TAKEN_FROM_ARGUMENT4U: _COUNT4, pickletools.TAKEN_FROM_ARGUMENT8U: _COUNT8,
               pickletools.UP_TO_NEWLINE: _LINE}
    table = [_UNKNOWN] * 256
    for op in pickletools.opcodes:
        n = op.arg.n if op.arg is not None else 0
        table[ord(op.code)] = special.get(op.name, n if n >= 0 else counted[n])
    return table


_LAYOUT = _opcode_layout()


def _check_pickle(data: bytes) -> None:
    """Raise UnpicklingError unless every opcode of `data` up to its STOP is a pickle opcode and every
    length and memo index it claims fits in `data`. The C unpickler allocates a BINBYTES's claimed
    length before reading it (2**60 bytes: MemoryError; 2**33: 8 GB) and sizes its memo by the largest
    index (LONG_BINPUT 2**28: 4 GB of zeroed memory), whatever the file holds; once this passes, what
    it allocates is bounded by a small multiple of the file's size. One pass over the opcodes, nothing
    built: about as long as the unpickling itself (a 21 MB, 4.8M-opcode REFER-like pickle: ~1 s)."""
    table, pos, end, at = _LAYOUT, 0, len(data), 0
    try:
        while True:
            at, kind = pos, table[data[pos]]  # IndexError past the end
            pos += 1
            if kind >= 0:  # most opcodes: none or a fixed-size argument
                pos += kind
            elif kind == _COUNT1:  # SHORT_BINSTRING, SHORT_BINUNICODE, ...: at most 255 bytes
                pos += data[pos] + 1
            elif kind == _STOP:
                return
            elif kind == _UNKNOWN:
                raise pickle.UnpicklingError(f"byte {at}: {data[at:at + 1]!r} is not a pickle opcode")
            elif kind < _COUNT1:  # a string, bytes or long of a claimed length
                width = 4 if kind == _COUNT4_SIGNED else -kind - 8
                count = int.from_bytes(data[pos:pos + width], "little", signed=kind == _COUNT4_SIGNED)
                pos += width
                if not 0 <= count <= end - pos:
                    raise pickle.UnpicklingError(f"byte {at}: opcode {data[at:at + 1]!r} claims {count} bytes, "
                                                 f"but {max(end - pos, 0)} follow: the pickle is truncated or corrupt")
                pos += count
            elif kind in (_LINE, _TWO_LINES, _PUT):
                newline = data.index(b"\n", pos)  # ValueError: no end of line
                if kind == _TWO_LINES:
                    newline = data.index(b"\n", newline + 1)
                elif kind == _PUT:
                    _check_memo_index(data[pos:newline], at)
                pos = newline + 1
            elif kind == _LONG_BINPUT:
                _check_memo_index(int.from_bytes(data[pos:pos + 4], "little"), at)
                pos += 4
            elif kind == _FRAME:
                length = int.from_bytes(data[pos:pos + 8], "little")
                pos += 8
                if length > end - pos:
                    raise pickle.UnpicklingError(f"byte {at}: a frame of {length} bytes, but {max(end - pos, 0)} "
                                                 "follow: the pickle is truncated or corrupt")
    except (IndexError, ValueError):
        raise pickle.UnpicklingError(f"the pickle ends (at byte {end}) before its STOP opcode, inside the opcode at "
                                     f"byte {at}: it is truncated") from None


def _check_memo_index(index: int | bytes, at: int) -> None:
    """A pickler numbers what it memoizes 0, 1, 2, ..., one opcode each: an index past the bytes before
    it is not one a pickler wrote (and would size the unpickler's memo)."""
    try:
        number = int(index)
    except ValueError:
        raise pickle.UnpicklingError(f"byte {at}: memo index {index!r} is not a number") from None
    if not 0 <= number <= at:
        raise pickle.UnpicklingError(f"byte {at}: memo index {number} is past the {at} bytes before it")


def read_plain_pickle(benchmark: str, path: Path, hint: str) -> Any:
    """A pickle of plain data, such as REFER's `refs(unc).p` as released (a Python 2 pickle of a list
    of dicts), read through `_PlainDataUnpickler`; a pickle that names any class, or that is not a
    well-formed pickle (truncated, an unknown opcode, a length or memo index past its end, an opcode
    applied to the wrong kind of object), fails with a ValueError that says so: a malformed file
    never raises another error nor makes the unpickler allocate more than a few times its size.
    Python 2 byte strings are decoded as UTF-8 (ASCII, which REFER's strings are, reads the same as
    with the reference's default)."""
    data = require(benchmark, path, hint).read_bytes()
    try:
        _check_pickle(data)
        return _PlainDataUnpickler(io.BufferedReader(io.BytesIO(data)), encoding="utf-8").load()
    except MemoryError:
        raise  # not the file's doing: _check_pickle bounds what it can make the unpickler allocate
    except Exception as err:  # any error building from untrusted bytes is a malformed file
        # (a REDUCE of a non-callable: TypeError; APPEND to a dict: AttributeError; INT "xyz": ValueError)
        why = str(err) if isinstance(err, (pickle.UnpicklingError, EOFError)) else f"{type(err).__name__}: {err}"
        raise ValueError(f"benchmark {benchmark!r}: {path} is not a plain-data pickle ({why})") from err


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
