"""Resize strategies: what each does to a non-square image, and per-backbone normalisation."""

import torch
from PIL import Image

from vlm_sweeps.data.transforms import ImageTransform, letterbox
from vlm_sweeps.models.vision import FAMILIES


def wide_image() -> Image.Image:
    """120x60: left third red, middle third green, right third blue."""
    im = Image.new("RGB", (120, 60))
    for x in range(120):
        color = (255, 0, 0) if x < 40 else (0, 255, 0) if x < 80 else (0, 0, 255)
        for y in range(60):
            im.putpixel((x, y), color)
    return im


def test_letterbox_fill_is_backbone_mean_colour():
    assert FAMILIES["clip"].fill_rgb() == (122, 116, 104)
    assert FAMILIES["siglip"].fill_rgb() == (127, 127, 127)
    padded = letterbox(wide_image(), (122, 116, 104))
    assert padded.size == (120, 120)
    assert padded.getpixel((60, 5)) == (122, 116, 104)  # band above the image
    assert padded.getpixel((5, 60)) == (255, 0, 0)


def test_crop_cuts_borders_naive_keeps_them():
    t = dict(size=30, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    crop = ImageTransform("crop", **t).resize(wide_image())
    naive = ImageTransform("naive", **t).resize(wide_image())
    lb = ImageTransform("letterbox", **t).resize(wide_image())
    assert crop.size == naive.size == lb.size == (30, 30)
    # crop keeps the centre 60 px of 120: green fills the middle, blue/red only at the edges
    assert crop.getpixel((15, 15))[1] > 200
    assert naive.getpixel((2, 15))[0] > 200 and naive.getpixel((27, 15))[2] > 200
    # letterbox: the image occupies the middle half vertically; top rows are fill
    assert lb.getpixel((15, 1)) == (0, 0, 0)


def test_normalisation_uses_the_backbone_statistics():
    fam = FAMILIES["dinov2"]
    t = ImageTransform("naive", 8, fam.mean, fam.std)
    x = t(Image.new("RGB", (8, 8), (255, 255, 255)))
    expected = torch.tensor([(1 - m) / s for m, s in zip(fam.mean, fam.std)])
    assert x.shape == (3, 8, 8)
    assert torch.allclose(x[:, 0, 0], expected, atol=1e-5)


def test_unknown_strategy_is_rejected_with_the_valid_ones():
    import pytest

    with pytest.raises(ValueError, match="naive, letterbox, crop"):
        ImageTransform("stretch", 8, (0, 0, 0), (1, 1, 1))
