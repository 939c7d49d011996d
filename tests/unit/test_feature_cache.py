"""The frozen-feature cache (vlm_sweeps/features.py) as a store: content addressing, half
precision, torn entries, LRU eviction under a size bound, several writers at once."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import pytest
import torch

from vlm_sweeps.features import FeatureCache, FrozenFeatures, image_key, space_key


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_entries_round_trip_in_half_precision(tmp_path, dtype):
    cache = FeatureCache(tmp_path, 10**9, dtype)
    x = torch.randn(49, 64)
    assert cache.get("space", "ab12") is None
    cache.put("space", "ab12", x)
    got = cache.get("space", "ab12")
    assert got.dtype == dtype and torch.equal(got, x.to(dtype))
    assert (cache.stats.hits, cache.stats.misses, cache.stats.written) == (1, 1, 1)


def test_images_are_addressed_by_content_not_path(tmp_path):
    (tmp_path / "a.png").write_bytes(b"same bytes")
    (tmp_path / "b.png").write_bytes(b"same bytes")
    (tmp_path / "c.png").write_bytes(b"other bytes")
    assert image_key(tmp_path / "a.png") == image_key(tmp_path / "b.png") != image_key(tmp_path / "c.png")


def test_space_changes_with_weights_transform_and_dtype():
    from vlm_sweeps.data.transforms import ImageTransform

    torch.manual_seed(0)
    bb = torch.nn.Linear(4, 4)
    t = ImageTransform("letterbox", 49, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2))
    base = space_key(bb, t, torch.float16)
    assert space_key(bb, t, torch.float16) == base
    assert space_key(bb, ImageTransform("naive", 49, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2)), torch.float16) != base
    assert space_key(bb, ImageTransform("letterbox", 56, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2)), torch.float16) != base
    assert space_key(bb, t, torch.bfloat16) != base
    with torch.no_grad():
        bb.weight[0, 0] += 1e-3
    assert space_key(bb, t, torch.float16) != base


def test_a_torn_entry_is_a_miss_and_is_dropped(tmp_path):
    cache = FeatureCache(tmp_path, 10**9)
    cache.put("s", "cd34", torch.ones(3, 2))
    path = cache.path("s", "cd34")
    path.write_bytes(path.read_bytes()[:20])  # e.g. a full disk
    assert cache.get("s", "cd34") is None and not path.exists()
    cache.put("s", "cd34", torch.ones(3, 2))
    assert torch.equal(cache.get("s", "cd34"), torch.ones(3, 2, dtype=torch.float16))


def test_eviction_keeps_the_most_recently_used_under_the_bound(tmp_path):
    cache = FeatureCache(tmp_path, 10**9)
    for i in range(6):
        cache.put("s", f"{i:04x}", torch.full((16, 16), float(i)))
    entry = cache.path("s", "0000").stat().st_size
    now = time.time()
    for i in range(6):  # written long ago, oldest first
        os.utime(cache.path("s", f"{i:04x}"), (now - 100 + i, now - 100 + i))
    assert cache.get("s", "0000") is not None  # a hit makes entry 0 the most recent
    cache.max_bytes = 3 * entry
    assert cache.evict() == 3
    assert cache.size() <= cache.max_bytes
    kept = {i for i in range(6) if cache.path("s", f"{i:04x}").exists()}
    assert kept == {0, 4, 5}
    assert cache.get("s", "0001") is None  # evicted: a miss, not an error


def _fill(root: str, start: int) -> None:
    cache = FeatureCache(root, 10**9)
    features = FrozenFeatures(cache, ["s1", "s2"])
    keys = [f"{i:04x}" for i in range(40)]
    order = keys[start:] + keys[:start]
    for key in order:
        if features.lookup(key) is None:
            value = torch.full((1, 8, 4), float(int(key, 16)))
            features.store([key], [value, value + 1])


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_several_jobs_filling_the_same_entries_at_once(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_fill, args=(str(tmp_path), start)) for start in (0, 10, 20, 30)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    features = FrozenFeatures(FeatureCache(tmp_path, 10**9), ["s1", "s2"])
    for i in range(40):
        got = features.lookup(f"{i:04x}")
        assert got is not None
        assert torch.equal(got[0], torch.full((8, 4), float(i), dtype=torch.float16))
        assert torch.equal(got[1], torch.full((8, 4), float(i + 1), dtype=torch.float16))
    assert not list(tmp_path.rglob("*.tmp"))  # no leftovers


def test_entries_of_the_first_format_count_toward_the_bound_and_go_first(tmp_path):
    cache = FeatureCache(tmp_path, 10**9)
    legacy = tmp_path / "s" / "ab" / "ab12.npy"  # written by the .npy format, never read now
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"\x93NUMPY" + bytes(2000))
    os.utime(legacy, (time.time() - 10, time.time() - 10))
    cache.put("s", "cd34", torch.ones(32, 16))
    assert cache.size() == legacy.stat().st_size + cache.path("s", "cd34").stat().st_size
    cache.max_bytes = cache.path("s", "cd34").stat().st_size
    assert cache.evict() == 1 and not legacy.exists() and cache.get("s", "cd34") is not None
