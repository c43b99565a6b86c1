"""Per-epoch image augmentation on the rank: random horizontal flips and random crops of a
zero-padded image, applied to each training batch in the reader's background thread.

The random draws come from a generator seeded by (seed, epoch, rank), like the shuffle,
so a resumed epoch sees exactly the images the interrupted one would have.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np


@dataclass(frozen=True)
class ImageAugment:
    """Flip and/or crop batches of flattened ``(channels, height, width)`` images."""

    shape: Tuple[int, int, int]
    flip: bool = False
    crop_padding: int = 0

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(x)
        c, h, w = self.shape
        images = x.reshape(n, c, h, w)
        if self.flip:
            flipped = rng.random(n) < 0.5
            images = images.copy()
            images[flipped] = images[flipped, :, :, ::-1]
        p = self.crop_padding
        if p:
            padded = np.pad(images, ((0, 0), (0, 0), (p, p), (p, p)))
            dy, dx = rng.integers(0, 2 * p + 1, n), rng.integers(0, 2 * p + 1, n)
            out = np.empty_like(images)
            for oy in range(2 * p + 1):  # one slice per offset, not per row
                for ox in range(2 * p + 1):
                    rows = np.flatnonzero((dy == oy) & (dx == ox))
                    if len(rows):
                        out[rows] = padded[rows, :, oy:oy + h, ox:ox + w]
            images = out
        return np.ascontiguousarray(images).reshape(n, c * h * w)
