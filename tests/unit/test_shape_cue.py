"""Why `resize=crop` scores at chance on synth_shape (issue 28): not the transform, which keeps the
aspect ratio (every cropped shape picture shows whole shapes, round or ELONGATION times longer, as
letterbox does), but a second cue of the world, the amount of colour: an elongated shape covers half
the area of a round one on a square canvas and twice it on a non-square one. After `letterbox` (which
shrinks the non-square canvases) the elongated pictures' colour lies between the two round kinds', so
the amount answers; after `crop` (which zooms them) it is reversed from square to non-square canvases.
The tiny model learns the amount (README, "The synthetic world"). Measured on the pixels of the tiny
encoders' input, as the model sees them."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import ndimage

from vlm_sweeps.data import synthetic as syn
from vlm_sweeps.data.transforms import ImageTransform

SIZE = 48  # CLIP @ 336 at tiny scale (resolution shrink 7)
MEAN, STD = (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)


def _pictures(strategy: str, n: int = 160, seed: int = 0):
    """(scene, the transformed picture's coloured pixels [SIZE, SIZE] bool) for n shape scenes."""
    rng = random.Random(seed)
    transform = ImageTransform(strategy, SIZE, MEAN, STD)
    for _ in range(n):
        scene = syn.planted_scene("shape", rng)
        pixels = np.asarray(transform.resize(syn.draw(scene))).astype(int)
        yield scene, (pixels.max(-1) - pixels.min(-1)) > 60  # saturated: a shape, not the background


def _whole_shapes(mask: np.ndarray) -> list[float]:
    """Long side / short side of every shape that does not touch the picture's border."""
    labels, _ = ndimage.label(mask)
    ratios = []
    for ys, xs in ndimage.find_objects(labels):
        if ys.start > 0 and xs.start > 0 and ys.stop < mask.shape[0] and xs.stop < mask.shape[1]:
            h, w = ys.stop - ys.start, xs.stop - xs.start
            ratios.append(max(w, h) / min(w, h))
    return ratios


def _is_round(scene: syn.Scene) -> bool:
    return scene.objects[0].shape in syn.SHAPE_PAIRS


@pytest.mark.parametrize("strategy", ["letterbox", "crop"])
def test_the_aspect_ratio_survives_letterbox_and_crop(strategy):
    """Each picture shows at least a row or column of whole shapes, of the true aspect ratio (the
    median: neighbours that touch after resampling merge into one blob): the information to answer
    is in the cropped picture."""
    for scene, mask in _pictures(strategy):
        ratios = _whole_shapes(mask)
        assert len(ratios) >= syn.SHAPE_GRID, (scene.size, len(ratios))
        lo, hi = (1.0, 1.3) if _is_round(scene) else (1.5, 2.6)
        assert lo <= np.median(ratios) <= hi, (scene.objects[0].shape, scene.size, ratios)


def _colour(strategy: str) -> dict[tuple[bool, bool], float]:
    """Mean share of coloured pixels by (square canvas, round shape)."""
    areas: dict[tuple[bool, bool], list[float]] = {}
    for scene, mask in _pictures(strategy, n=240):
        areas.setdefault((scene.size[0] == scene.size[1], _is_round(scene)), []).append(mask.mean())
    return {key: float(np.mean(v)) for key, v in areas.items()}


def test_the_amount_of_colour_answers_after_letterbox_and_is_reversed_after_crop():
    """The README's account of crop's chance score. If the world's areas change (round and elongated
    shapes of equal area), this fails: measure crop again and update the README's sentence."""
    box = _colour("letterbox")
    # the elongated pictures' colour lies between the round ones' of either canvas: it alone answers
    elongated = (box[True, False], box[False, False])
    assert 1.3 * box[False, True] < min(elongated) and max(elongated) < box[True, True] / 1.3, box
    crop = _colour("crop")
    # square canvases: elongated less colour than round; non-square: more (crop zooms them)
    assert crop[True, False] < crop[True, True] / 1.6 and crop[False, False] > 1.6 * crop[False, True], crop
