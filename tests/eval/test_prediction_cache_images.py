"""The prediction cache keys an example's image by its bytes, not its name and size (issue 23 item 11):
an image replaced by another of the same name and size is a miss, not the old image's answer."""

from __future__ import annotations

import os
import time
from pathlib import Path

from vlm_sweeps.eval import cache as cache_module
from vlm_sweeps.eval.cache import CacheKey, PredictionCache, fingerprint
from vlm_sweeps.eval.examples import EvalExample

KEY = CacheKey(model="sig-0123", benchmark="vqa-v2", blind=False, max_new_tokens=8, dtype="fp32", harness_version=1)


def test_an_image_replaced_by_one_of_the_same_name_and_size_misses(tmp_path: Path) -> None:
    image = tmp_path / "COCO_val2014_000000000042.jpg"
    image.write_bytes(b"\xff\xd8 a cat \xff\xd9")
    example = EvalExample(qid="42", question="What animal is this?", image=str(image))
    store = PredictionCache(tmp_path / "cache")
    store.store(KEY, [example], ["cat"])
    assert store.lookup(KEY, [example]) == ["cat"]

    stat = image.stat()
    time.sleep(0.05)  # past the kernel's timestamp tick: the rewrite gets a new ctime, as any later edit does
    image.write_bytes(b"\xff\xd8 a dog \xff\xd9")  # same name, same size, same mtime: other pixels
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert image.stat().st_size == stat.st_size and image.stat().st_mtime_ns == stat.st_mtime_ns
    assert store.lookup(KEY, [example]) == [None]

    time.sleep(0.05)
    image.write_bytes(b"\xff\xd8 a cat \xff\xd9")  # the first image back: its answer again
    assert store.lookup(KEY, [example]) == ["cat"]


def test_the_same_bytes_under_another_name_or_folder_hit_and_digests_are_memoized(tmp_path: Path, monkeypatch) -> None:
    a, b = tmp_path / "a.png", tmp_path / "copy" / "b.png"
    b.parent.mkdir()
    a.write_bytes(b"pixels")
    b.write_bytes(b"pixels")
    fp = [fingerprint(EvalExample(qid="1", question="q", image=str(p))) for p in (a, b)]
    assert fp[0] == fp[1]

    reads = []
    monkeypatch.setattr(cache_module, "image_key", lambda path: reads.append(path) or "digest")
    monkeypatch.setattr(cache_module, "_DIGESTS", {})
    for _ in range(3):  # one read per file per process, not per lookup
        fingerprint(EvalExample(qid="1", question="q", image=str(a)))
    assert reads == [str(a)]


def test_a_missing_image_and_no_image_differ(tmp_path: Path) -> None:
    missing = EvalExample(qid="1", question="q", image=str(tmp_path / "gone.jpg"))
    text_only = EvalExample(qid="1", question="q", image=None)
    assert fingerprint(missing) != fingerprint(text_only)
