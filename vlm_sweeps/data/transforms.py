"""Image preprocessing: a resize strategy (the `resize` axis), then each backbone's own
normalisation. Letterbox pads with the backbone's mean colour, as the anchor does."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.transforms import functional as TF
from torchvision.transforms import InterpolationMode

STRATEGIES = ("naive", "letterbox", "crop")
_INTERP = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR}


def letterbox(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
    """Pad to a square canvas (image centred) filled with `fill`."""
    w, h = image.size
    side = max(w, h)
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas


@dataclass(frozen=True)
class ImageTransform:
    """PIL image -> normalised tensor [3, size, size] for one backbone."""

    strategy: str
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown resize strategy {self.strategy!r}; known: {', '.join(STRATEGIES)}")

    @property
    def fill(self) -> tuple[int, int, int]:
        return tuple(int(m * 255) for m in self.mean)  # type: ignore[return-value]

    def resize(self, image: Image.Image) -> Image.Image:
        image = image.convert("RGB")
        interp = _INTERP[self.interpolation]
        if self.strategy == "naive":  # warp to S x S
            return TF.resize(image, [self.size, self.size], interpolation=interp, antialias=True)
        if self.strategy == "letterbox":  # keep aspect ratio, pad with the mean colour
            return TF.resize(letterbox(image, self.fill), [self.size, self.size], interpolation=interp,
                             antialias=True)
        # crop: short side to S, centre crop (loses the borders of non-square images)
        image = TF.resize(image, self.size, interpolation=interp, antialias=True)
        return TF.center_crop(image, [self.size, self.size])

    def __call__(self, image: Image.Image) -> torch.Tensor:
        tensor = TF.pil_to_tensor(self.resize(image)).float().div_(255)
        return TF.normalize(tensor, self.mean, self.std)
