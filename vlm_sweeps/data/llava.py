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
    records, supervised = [], False
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
                                f"{type(turn['value']).__name__} {turn['value']!r:.80}")
            supervised = supervised or (turn["from"] == "gpt" and bool(turn["value"].strip()))
        image = item.get("image")
        if image is None and drop_text_only:
            continue
        if image is not None and not isinstance(image, str):
            raise DataError(f"{where}: 'image' must be a relative path string, got {image!r}")
        path = resolve_image(image_root, image, where) if image is not None else None
        records.append(Record(str(item.get("id", index)), path, tuple(turns)))
    if not supervised:
        raise DataError(f"{json_file}: no record has a non-empty 'gpt' turn, so there is no supervised token to "
                        "train on (the loss would be NaN); the assistant's answers are the 'gpt' turns")
    if not records:
        raise DataError(f"{json_file}: every record is text-only and data.drop_text_only=true drops them all; "
                        "nothing is left to train on")
    return records


def check_image_headers(records: list[Record], json_file: Path, show: int = 10) -> None:
    """Stop before training when an image cannot be opened or is larger than PIL's limit
    (Image.MAX_IMAGE_PIXELS): its header is read, not its pixels."""
    import warnings

    from PIL import Image

    bad = []
    for i, r in enumerate(records):
        if r.image is None:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)  # over the limit: refused too
                with Image.open(r.image) as im:
                    size = im.size
            if Image.MAX_IMAGE_PIXELS and size[0] * size[1] > Image.MAX_IMAGE_PIXELS:
                raise Image.DecompressionBombError(f"{size[0]}x{size[1]} pixels")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            bad.append((i, r, f"too large for PIL ({err}); downscale it, or raise PIL.Image.MAX_IMAGE_PIXELS "
                              "deliberately"))
        except (OSError, ValueError, SyntaxError) as err:
            bad.append((i, r, f"not a readable image ({err})"))
    if bad:
        lines = [f"  record {i} (id {r.id}): {r.image}: {why}" for i, r, why in bad[:show]]
        more = f"\n  ... and {len(bad) - show} more" if len(bad) > show else ""
        raise DataError(f"{json_file}: {len(bad)} of {len(records)} records name images that cannot be used:\n"
                        + "\n".join(lines) + more + "\nfix or replace these files before training; records are "
                        "never skipped silently")


def check_images_exist(records: list[Record], json_file: Path, show: int = 10) -> None:
    """Stop before training when image files are missing, naming them with their record index
    (one stat per image: a broken download is found in seconds, not hours into a run)."""
    absent = [(i, r) for i, r in enumerate(records) if r.image is not None and not r.image.is_file()]
    if not absent:
        check_image_headers(records, json_file, show)
    if absent:
        lines = [f"  record {i} (id {r.id}): {r.image}" for i, r in absent[:show]]
        more = f"\n  ... and {len(absent) - show} more" if len(absent) > show else ""
        raise DataError(f"{json_file}: {len(absent)} of {len(records)} records name image files that do not exist:\n"
                        + "\n".join(lines) + more + "\nfetch the missing images (or fix the paths) before training; "
                        "records are never skipped silently")
