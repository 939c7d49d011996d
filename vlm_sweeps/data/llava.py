"""LLaVA-format instruction files: the one reader for real mixes and for the synthetic world.

A record: `{"id", "image" (path relative to the image root, absent for text-only),
"conversations": [{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", "value": "..."}, ...]}`.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO


class DataError(ValueError):
    """A data file or record that cannot be used; the message names the file and record."""


@dataclass(frozen=True, slots=True)
class Record:
    """One record, held compactly: a run holds every record of its mix (665K in LLaVA's), so a record
    keeps strings and one flat tuple, not a dict per turn and a Path per image; `image` and
    `conversations` build those when asked."""

    id: str
    image_path: str | None  # absolute, inside the image root
    turns: tuple[str, ...]  # role, value, role, value, ...; each role the one "human" or "gpt" object

    @property
    def image(self) -> Path | None:
        return Path(self.image_path) if self.image_path is not None else None

    @property
    def conversations(self) -> tuple[dict, ...]:
        """The turns as the file wrote them: ({"from": "human", "value": ...}, {"from": "gpt", ...}, ...)."""
        t = self.turns
        return tuple({"from": t[i], "value": t[i + 1]} for i in range(0, len(t), 2))

    @property
    def is_multimodal(self) -> bool:
        return self.image_path is not None


def _resolved(image_root: str, relative: str, where: str) -> str:
    root = image_root
    path = os.path.normpath(os.path.join(root, relative))
    if os.path.isabs(relative) or not path.startswith(root.rstrip(os.sep) + os.sep):
        raise DataError(f"{where}: image path {relative!r} escapes the image root {root}; "
                        "image paths must be relative and stay inside the data root")
    return path


def resolve_image(image_root: Path, relative: str, where: str) -> Path:
    """`image_root / relative`, refusing paths that escape the root (`../../etc/passwd`, `/etc/passwd`).

    The check is on the path as written (normalised, not resolved): an image root commonly links
    shared dataset folders in (`coco -> /datasets/coco`), and following those links is the user's
    choice; what a record's path may not do is climb out of the root. `image_root` should be
    absolute and resolved (`load_llava` resolves it once for all records: one syscall per record
    would make reading a 665K mix take minutes)."""
    return Path(_resolved(os.fspath(image_root), relative, where))


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_CHUNK = 1 << 20  # bytes read at a time: the text held is about this much, not the whole file (larger
# windows, freed on the heap, fragment it: 8 MiB peaked 40% higher on a 200 MB file with non-Latin-1 text)
_TAIL = 16  # a record cut by the window's end fails within this many characters of it (or mid-string)


class _JsonList:
    """The items of a JSON file's top-level list, parsed one at a time from a window of its text.

    `json.loads` of a whole file holds its bytes, its text (at up to 4 bytes a character when one
    character needs it) and every parsed record at once: a 1 GB mix peaked at 9 GB. Here the text
    held is a window of about `_CHUNK`, and each record is parsed, kept compactly and dropped. The
    errors, and which of two comes first, are json.loads's: a bad UTF-8 byte anywhere before a JSON
    error, line, column and char counted from the file's start."""

    def __init__(self, file: BinaryIO, json_file: Path):
        self.file, self.json_file = file, json_file
        self.scan = json.JSONDecoder().raw_decode
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.text, self.pos = "", 0  # the window; text[pos:] is not parsed yet
        self.start = 0  # characters of the file before the window
        self.newlines, self.last_newline = 0, -1  # before the window: how many, the file index of the last
        self.bytes_read, self.eof = 0, False

    def read(self, size: int | None = None) -> bool:
        """Add `size` (default `_CHUNK`) bytes' text to the window, first dropping what was parsed;
        False at the end of the file."""
        if self.eof:
            return False
        size = size or _CHUNK
        if self.pos > len(self.text) // 2:
            if n := self.text.count("\n", 0, self.pos):
                self.newlines += n
                self.last_newline = self.start + self.text.rfind("\n", 0, self.pos)
            self.start += self.pos
            self.text, self.pos = self.text[self.pos:], 0
        data = self.file.read(size)
        self.eof = len(data) < size
        pending = len(self.utf8.getstate()[0])  # bytes of a character cut by the last read
        try:
            self.text += self.utf8.decode(data, final=self.eof)
        except UnicodeDecodeError as err:
            raise DataError(f"{self.json_file} is not UTF-8 text (byte {self.bytes_read - pending + err.start}: "
                            f"{err.reason}); LLaVA files are UTF-8 JSON: re-encode it (e.g. iconv -t UTF-8)") from err
        self.bytes_read += len(data)
        return True

    def error(self, message: str, pos: int) -> DataError:
        """json.loads's error for `message` at window index `pos`, located in the whole file; the rest of
        the file is decoded first, so that a bad UTF-8 byte anywhere is reported first, as json.loads does."""
        at = self.start + pos
        line = self.newlines + self.text.count("\n", 0, pos) + 1
        last = self.text.rfind("\n", 0, pos)
        column = pos - last if last >= 0 else at - self.last_newline
        self.pos = len(self.text)
        while self.read():
            self.pos = len(self.text)
        return DataError(f"{self.json_file} is not valid JSON: {message}: line {line} column {column} (char {at})")

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end), skipping to it."""
        while True:
            self.pos = _WHITESPACE.match(self.text, self.pos).end()
            if self.pos < len(self.text) or not self.read():
                return self.text[self.pos:self.pos + 1]

    def value(self) -> Any:
        """The JSON value at the window's position, reading on while the window ends inside it."""
        while True:
            try:
                item, end = self.scan(self.text, self.pos)
                # a number ("1e5" read as "1e") may be cut short by the window's end and still parse
                if self.eof or end + (_TAIL if isinstance(item, (int, float)) else 0) < len(self.text):
                    self.pos = end
                    return item
            except json.JSONDecodeError as err:
                cut = err.pos + _TAIL >= len(self.text) or err.msg.startswith("Unterminated string")
                if self.eof or not cut:
                    raise self.error(err.msg, err.pos) from None
            self.read(max(_CHUNK, len(self.text) - self.pos))

    def __iter__(self) -> Iterator[Any]:
        while len(self.text) < 1 and self.read():  # a first character (its bytes may span reads)
            pass
        if self.text.startswith("\ufeff"):
            raise self.error("Unexpected UTF-8 BOM (decode using utf-8-sig)", 0)
        if self.peek() != "[":  # not a list: parsed whole for json's error or the type found
            found = self.value()
            if self.peek():
                raise self.error("Extra data", self.pos)
            raise DataError(f"{self.json_file}: expected a JSON list of records, got {type(found).__name__}")
        self.pos += 1
        if self.peek() == "]":
            self.pos += 1
        else:
            while True:
                yield self.value()
                delimiter = self.peek()
                self.pos += 1
                if delimiter == "]":
                    break
                if delimiter != ",":
                    raise self.error("Expecting ',' delimiter", self.pos - 1)
                self.peek()
        if self.peek():
            raise self.error("Extra data", self.pos)


def _record(item: Any, index: int, image_root: str, where: str, drop_text_only: bool) -> Record | None:
    """`item` validated and held compactly; None for a text-only record dropped."""
    turns = item.get("conversations") if isinstance(item, dict) else None
    if not turns or not isinstance(turns, list):
        raise DataError(f"{where}: missing 'conversations' list")
    flat = []
    for number, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("from") not in ("human", "gpt") or "value" not in turn:
            raise DataError(f"{where}: each turn needs 'from' in (human, gpt) and 'value', got {turn!r}")
        if not isinstance(turn["value"], str):
            raise DataError(f"{where} turn {number}: 'value' must be a string, got "
                            f"{type(turn['value']).__name__} {turn['value']!r:.80}; write the turn's text "
                            "as a JSON string")
        flat += ("human" if turn["from"] == "human" else "gpt", turn["value"])  # one shared object per role
    image = item.get("image")
    if image is None and drop_text_only:
        return None
    if image is not None and not isinstance(image, str):
        raise DataError(f"{where}: 'image' must be a relative path string, got {image!r}")
    path = _resolved(image_root, image, where) if image is not None else None
    return Record(str(item.get("id", index)), path, tuple(flat))


def load_llava(json_file: Path, image_root: Path | None = None, drop_text_only: bool = False) -> list[Record]:
    """Read and validate a LLaVA-format JSON list. Images resolve against `image_root`
    (default: the JSON file's folder). The file is parsed a record at a time (`_JsonList`), so the
    peak memory is about that of the records kept, not several times the file."""
    json_file = Path(json_file)
    if not json_file.is_file():
        raise DataError(f"LLaVA file not found: {json_file}")
    root = os.fspath((Path(image_root) if image_root is not None else json_file.parent).resolve())
    records, count, problem = [], 0, None
    with json_file.open("rb") as file:
        for index, item in enumerate(_JsonList(file, json_file)):
            count += 1
            if problem is not None:
                continue  # parsed on: an error of the file's JSON or UTF-8 is reported before a record's
            try:
                if (record := _record(item, index, root, f"{json_file} record {index}", drop_text_only)) is not None:
                    records.append(record)
            except DataError as err:
                problem, records = err, []
    if problem is not None:
        raise problem
    if not count:
        raise DataError(f"{json_file} holds no records (an empty list): a stage cannot train on it; point the "
                        "data option at the stage's LLaVA file")
    if not records:
        raise DataError(f"{json_file}: every record is text-only and data.drop_text_only=true drops them all; "
                        "nothing is left to train on (use data.drop_text_only=false or a file with images)")
    # Checked on the records kept: the loss averages over assistant tokens, and with none it is NaN.
    if not any(t[i] == "gpt" and t[i + 1].strip() for t in (r.turns for r in records) for i in range(0, len(t), 2)):
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
