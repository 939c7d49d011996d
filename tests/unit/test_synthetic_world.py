"""The synthetic world's planted effects hold by construction (data/synthetic.py), and a changed
generator never reuses a world cached by an older one."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import ImageFont

from tests.conftest import CONF
from vlm_sweeps.config import SyntheticConf
from vlm_sweeps.data import synthetic as syn
from vlm_sweeps.data.transforms import ImageTransform

# The generator's output (records and questions, not pixels: those depend on PIL's rasteriser) for
# VERSION, with the word's measured box fixed (the box places the objects, and Pillow's default font
# measures differently from one Pillow release to the next). A change to the generator changes it:
# bump syn.VERSION (so that cached worlds are not reused) and update both here.
FINGERPRINT = (6, "2b92cc9e05798643")
DEFAULT_TASKS = dict(OmegaConf.load(CONF / "data" / "synthetic.yaml").synthetic.tasks)  # data=synthetic
TINY = SyntheticConf(n_align=6, n_finetune=40, n_eval=5, tasks=DEFAULT_TASKS)
MEAN = (0.5, 0.5, 0.5)


def _fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in ["align.json", "finetune.json", *sorted(f"eval/{b}.json" for b in syn.BENCHMARK_TASK)]:
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory) -> Path:
    return syn.ensure_world(tmp_path_factory.mktemp("cache"), TINY)


def _fixed_metrics_font():
    font = ImageFont.load_default(size=16)
    font.getbbox = lambda text, *args, **kwargs: (0, 4, 9 * len(text), 16)  # 9 px a letter, 12 px high
    return font


def test_generator_output_is_pinned_to_its_version(tmp_path, monkeypatch):
    monkeypatch.setattr(syn, "_font", _fixed_metrics_font)
    world = syn.ensure_world(tmp_path, TINY)
    assert (syn.VERSION, _fingerprint(world)) == FINGERPRINT, (
        "the synthetic generator's output changed: bump VERSION in vlm_sweeps/data/synthetic.py "
        "and update FINGERPRINT here")


def test_world_key_follows_the_version_and_every_setting(monkeypatch):
    key = syn.world_key(TINY)
    assert syn.world_key(replace(TINY)) == key
    assert syn.world_key(replace(TINY, n_eval=6)) != key
    assert syn.world_key(replace(TINY, tasks={**TINY.tasks, "shape": 3.0})) != key
    monkeypatch.setattr(syn, "VERSION", syn.VERSION + 1)
    assert syn.world_key(TINY) != key


def test_a_world_cached_by_another_version_is_not_reused(tmp_path, monkeypatch):
    old = syn.ensure_world(tmp_path, TINY)
    monkeypatch.setattr(syn, "VERSION", syn.VERSION + 1)
    new = syn.ensure_world(tmp_path, TINY)
    assert new != old and (new / "corpus.txt").exists()


def test_every_synthetic_benchmark_has_its_eval_file(tiny_world):
    for bench, task in syn.BENCHMARK_TASK.items():
        items = json.loads((tiny_world / "eval" / f"{bench}.json").read_text())
        assert len(items) == TINY.n_eval, bench
        assert all((tiny_world / it["image"]).is_file() for it in items)


def _scenes(task: str, n: int = 400, seed: int = 0) -> list[syn.Scene]:
    rng = random.Random(seed)
    return [syn.planted_scene(task, rng) for _ in range(n)]


def _look(scene: syn.Scene) -> str:
    """What the object looks like after `naive` warps the canvas to a square: its aspect ratio in
    canvas-relative units, binned."""
    (w, h), (x1, y1, x2, y2) = scene.size, scene.objects[0].box
    ratio = ((x2 - x1) / w) / ((y2 - y1) / h)
    return "round" if abs(np.log(ratio)) < 0.15 else "wide" if ratio > 1 else "tall"


def test_naive_resizing_makes_ellipses_and_circles_look_alike():
    """synth_shape: after warping to a square, each look (round, wide, tall) comes from the round
    shape and from the elongated one about equally often; with the aspect ratio kept (letterbox,
    crop) the round shapes are round and the elongated ones ELONGATION times longer."""
    scenes = _scenes("shape", 2000)
    for round_shape, long_shape in syn.SHAPE_PAIRS.items():
        for look in ("round", "wide", "tall"):
            a = sum(s.objects[0].shape == round_shape and _look(s) == look for s in scenes)
            b = sum(s.objects[0].shape == long_shape and _look(s) == look for s in scenes)
            assert a > 50 and b > 50 and 0.75 < a / b < 1.33, (round_shape, look, a, b)
    for s in scenes:
        x1, y1, x2, y2 = s.objects[0].box
        ratio = max(x2 - x1, y2 - y1) / min(x2 - x1, y2 - y1)
        expected = 1.0 if s.objects[0].shape in syn.SHAPE_PAIRS else syn.ELONGATION
        assert ratio == pytest.approx(expected, rel=0.1)
        assert len(s.objects) == syn.SHAPE_GRID ** 2 and len({o.shape for o in s.objects}) == 1


def _central_square(size: tuple[int, int]) -> tuple[int, int, int, int]:
    w, h = size
    side = min(w, h)
    return (w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side


def _inside(box, square) -> bool:
    return square[0] <= box[0] and square[1] <= box[1] and box[2] <= square[2] and box[3] <= square[3]


def test_a_centre_crop_keeps_the_middle_shapes_whole():
    """synth_shape is about the aspect ratio, not the margins: the middle column (wide canvases)
    or row (tall ones) of shapes lies inside the central square a crop keeps."""
    n = syn.SHAPE_GRID
    for s in _scenes("shape"):
        w, h = s.size
        middle = [o for k, o in enumerate(s.objects)
                  if w == h or (k // n == n // 2 if w > h else k % n == n // 2)]
        assert len(middle) >= n and all(_inside(o.box, _central_square(s.size)) for o in middle)


def test_a_centre_crop_cuts_the_margin_object_away():
    """synth_margin: the object lies outside the central square, so `crop` sees only background
    while `letterbox` and `naive` see its colour."""
    crop = ImageTransform("crop", 49, MEAN, MEAN)
    letterbox = ImageTransform("letterbox", 49, MEAN, MEAN)
    for s in _scenes("margin", 60):
        cx1, cy1, cx2, cy2 = _central_square(s.size)
        x1, y1, x2, y2 = s.objects[0].box
        assert x2 <= cx1 or x1 >= cx2 or y2 <= cy1 or y1 >= cy2
        image = syn.draw(s)
        cropped = np.asarray(crop.resize(image), dtype=float)
        assert np.abs(cropped - np.array([238, 238, 232])).max() < 12  # background only
        color = np.array(syn.COLORS[s.objects[0].color], dtype=float)
        kept = np.asarray(letterbox.resize(image), dtype=float)
        assert np.abs(kept - color).sum(axis=2).min() < 60  # the object's colour is there


def test_fine_stripes_fade_at_the_lower_resolution():
    """synth_fine: the stripes keep their contrast at the 336 px encoders' tiny input (49 px) and
    lose most of it at the 224 px encoders' (35 px)."""
    def contrast(size: int, scene: syn.Scene) -> float:
        pixels = np.asarray(ImageTransform("letterbox", size, MEAN, MEAN).resize(syn.draw(scene)),
                            dtype=float).mean(axis=2)
        x1, y1, x2, y2 = (round(v * size / scene.size[0]) for v in scene.objects[0].box)
        patch = pixels[y1 + 2:y2 - 2, x1 + 2:x2 - 2]
        axis = 1 if scene.objects[0].pattern == "vertical" else 0
        return float(np.abs(np.diff(patch, axis=axis)).mean())

    scenes = _scenes("fine", 40)
    high = np.mean([contrast(49, s) for s in scenes])
    low = np.mean([contrast(35, s) for s in scenes])
    assert low < 0.6 * high, (low, high)


def test_answers_follow_the_scene():
    rng = random.Random(3)
    for _ in range(200):
        scene = syn.make_scene(rng, 3)
        count = syn.task_example("count", scene, rng)
        assert count["answer"] == str(len(scene.objects)) and count["answer"] in count["choices"]
        spatial = syn.task_example("spatial", scene, rng)
        if spatial is None:
            continue
        question = spatial["question"]
        obj = next(o for o in scene.objects if f"the {o.name} on" in question
                   or f"the {o.color} shape on" in question)
        (x, y), (w, h) = obj.center, scene.size
        holds = {"left": x < w / 2, "right": x > w / 2, "top": y < h / 2, "bottom": y > h / 2}
        assert holds[spatial["answer"]] and spatial["answer"] in spatial["choices"]
    for task in syn.PLANTED:
        for scene in _scenes(task, 50):
            example = syn.task_example(task, scene, rng)
            assert example["answer"] in example["choices"]


def test_planted_records_come_in_proportion_to_their_weight(tmp_path):
    conf = SyntheticConf(n_align=2, n_finetune=1500, n_eval=1, tasks=DEFAULT_TASKS)
    syn.generate(tmp_path, conf)
    records = json.loads((tmp_path / "finetune.json").read_text())
    total = sum(conf.tasks.values())
    for task, phrase in (("text_only", None), ("shape", "Is each shape a"), ("fine", "stripes")):
        if task == "text_only":
            got = sum("image" not in r for r in records)
        else:
            got = sum(phrase in r["conversations"][0]["value"] for r in records)
        expected = conf.tasks.get(task, 0) / total * len(records)
        assert abs(got - expected) < 4 * np.sqrt(expected + 1), (task, got, expected)
