"""LLaVA-format instruction files: the one reader for real mixes and for the synthetic world.

A record: `{"id", "image" (path relative to the image root, absent for text-only),
"conversations": [{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", "value": "..."}, ...]}`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


class DataError(ValueError):
    """A data file or record that cannot be used; the message names the file and record."""


@dataclass(frozen=True)
class Record:
    id: str
    image: Path | None  # absolute, inside the image root
    conversations: tuple[dict, ...]

    @property
    def is_multimodal(self) -> bool:
        return self.image is not None


def resolve_image(image_root: Path, relative: str, where: str) -> Path:
    """`image_root / relative`, refusing paths that escape the root (`../../etc/passwd`, `/etc/passwd`).

    The check is on the path as written (normalised, not resolved): an image root commonly links
    shared dataset folders in (`coco -> /datasets/coco`), and following those links is the user's
    choice; what a record's path may not do is climb out of the root. `image_root` should be
    absolute and resolved (`load_llava` resolves it once for all records: one syscall per record
    would make reading a 665K mix take minutes)."""
    root = os.fspath(image_root)
    path = os.path.normpath(os.path.join(root, relative))
    if os.path.isabs(relative) or not path.startswith(root.rstrip(os.sep) + os.sep):
        raise DataError(f"{where}: image path {relative!r} escapes the image root {root}; "
                        "image paths must be relative and stay inside the data root")
    return Path(path)


def load_llava(json_file: Path, image_root: Path | None = None, drop_text_only: bool = False) -> list[Record]:
    """Read and validate a LLaVA-format JSON list. Images resolve against `image_root`
    (default: the JSON file's folder)."""
    json_file = Path(json_file)
    if not json_file.is_file():
        raise DataError(f"LLaVA file not found: {json_file}")
    image_root = (Path(image_root) if image_root is not None else json_file.parent).resolve()
    try:
        raw = json.loads(json_file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise DataError(f"{json_file} is not UTF-8 text (byte {err.start}: {err.reason}); LLaVA files are "
                        "UTF-8 JSON: re-encode it (e.g. iconv -t UTF-8)") from err
    except json.JSONDecodeError as err:
        raise DataError(f"{json_file} is not valid JSON: {err}") from err
    if not isinstance(raw, list):
        raise DataError(f"{json_file}: expected a JSON list of records, got {type(raw).__name__}")
    if not raw:
        raise DataError(f"{json_file} holds no records (an empty list): a stage cannot train on it; point the "
                        "data option at the stage's LLaVA file")
    records = []
    for index, item in enumerate(raw):
        where = f"{json_file} record {index}"
        turns = item.get("conversations") if isinstance(item, dict) else None
        if not turns or not isinstance(turns, list):
            raise DataError(f"{where}: missing 'conversations' list")
        for number, turn in enumerate(turns):
            if not isinstance(turn, dict) or turn.get("from") not in ("human", "gpt") or "value" not in turn:
                raise DataError(f"{where}: each turn needs 'from' in (human, gpt) and 'value', got {turn!r}")
            if not isinstance(turn["value"], str):
                raise DataError(f"{where} turn {number}: 'value' must be a string, got "
                                f"{type(turn['value']).__name__} {turn['value']!r:.80}; write the turn's text "
                                "as a JSON string")
        image = item.get("image")
        if image is None and drop_text_only:
            continue
        if image is not None and not isinstance(image, str):
            raise DataError(f"{where}: 'image' must be a relative path string, got {image!r}")
        path = resolve_image(image_root, image, where) if image is not None else None
        records.append(Record(str(item.get("id", index)), path, tuple(turns)))
    if not records:
        raise DataError(f"{json_file}: every record is text-only and data.drop_text_only=true drops them all; "
                        "nothing is left to train on (use data.drop_text_only=false or a file with images)")
    # Checked on the records kept: the loss averages over assistant tokens, and with none it is NaN.
    if not any(t["from"] == "gpt" and t["value"].strip() for r in records for t in r.conversations):
        kept = " kept (data.drop_text_only=true)" if drop_text_only else ""
        raise DataError(f"no supervised token: {json_file}: none of its {len(records)} records{kept} has a "
                        "non-empty 'gpt' turn, so training on it would give a NaN loss; the assistant's answers "
                        "must be 'gpt' turns ({\"from\": \"gpt\", \"value\": \"...\"})")
    return records


def _header_problem(path: Path) -> str | None:
    """Why the image at `path` cannot be used, from its header alone (no pixel is decoded); None if it can.
    Call under a warnings filter that turns PIL's DecompressionBombWarning into an error."""
    from PIL import Image

    try:
        with Image.open(path):
            return None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        return (f"too large for PIL ({err}); downscale the image, or raise PIL.Image.MAX_IMAGE_PIXELS "
                f"deliberately (now {Image.MAX_IMAGE_PIXELS})")
    except (OSError, ValueError, SyntaxError) as err:  # UnidentifiedImageError is an OSError
        return f"not a readable image ({err}); re-fetch or replace the file"


def check_images_exist(records: list[Record], json_file: Path, show: int = 10, headers: bool = True) -> None:
    """Stop before training when image files are missing, naming them with their record index
    (one stat per image: a broken download is found in seconds, not hours into a run). With
    `headers`, each existing image's header is also opened with PIL (no pixel decode), so files
    PIL cannot read and images over PIL.Image.MAX_IMAGE_PIXELS are reported here too, all in one error."""
    import warnings

    from PIL import Image

    absent, unusable = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # over the limit is refused, not warned
        for i, r in enumerate(records):
            if r.image is None:
                continue
            if not r.image.is_file():
                absent.append((i, r))
            elif headers and (why := _header_problem(r.image)) is not None:
                unusable.append((i, r, why))
    if not absent and not unusable:
        return

    def listing(rows: list[str], n: int) -> str:
        more = f"\n  ... and {n - show} more" if n > show else ""
        return "\n".join(rows[:show]) + more

    parts = []
    if absent:
        parts.append(f"{json_file}: {len(absent)} of {len(records)} records name image files that do not exist:\n"
                     + listing([f"  record {i} (id {r.id}): {r.image}" for i, r in absent], len(absent))
                     + "\nfetch the missing images (or fix the paths) before training")
    if unusable:
        parts.append(f"{json_file}: {len(unusable)} of {len(records)} records name images that cannot be used:\n"
                     + listing([f"  record {i} (id {r.id}): {r.image}: {why}" for i, r, why in unusable],
                               len(unusable))
                     + "\nfix or replace these files before training")
    raise DataError("\n".join(parts) + "; records are never skipped silently")
