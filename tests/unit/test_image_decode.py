"""Decoding image files: good ones become uint8 pixels (channels first); a damaged file, a
file that is no image, or a wrong mode or size gives a reason instead."""
import io

import numpy as np
import pytest

from sparkdl.core.config import ImageConfig
from sparkdl.preparation.images import decode

PIL = pytest.importorskip("PIL.Image")


def _png(array, mode):
    buf = io.BytesIO()
    PIL.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


def test_a_good_image_becomes_its_bytes_and_rgb_is_channels_first():
    gray = (np.arange(12, dtype=np.uint8).reshape(3, 4) * 20)
    pixels, reason = decode(_png(gray, "L"), ImageConfig(height=3, width=4))
    assert reason is None and np.frombuffer(pixels, np.uint8).reshape(3, 4).tolist() == gray.tolist()
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = 10, 200
    pixels, _ = decode(_png(rgb, "RGB"), ImageConfig(height=2, width=2, mode="RGB"))
    chw = np.frombuffer(pixels, np.uint8).reshape(3, 2, 2)
    assert chw[0].tolist() == [[10, 10], [10, 10]] and chw[2].tolist() == [[200, 200], [200, 200]]


def test_mode_and_size_are_converted_only_when_asked():
    rgb = _png(np.full((8, 8, 3), 90, np.uint8), "RGB")
    pixels, reason = decode(rgb, ImageConfig(height=8, width=8))
    assert pixels is None and reason.startswith("mode RGB, not L (set data.image.convert: true")
    pixels, reason = decode(rgb, ImageConfig(height=4, width=4, convert=True))
    assert reason is None and len(pixels) == 16 and set(pixels) == {90}
    pixels, reason = decode(rgb, ImageConfig(height=4, width=4, mode="RGB", resize=False))
    assert pixels is None and reason == "size 8x8, not 4x4 (set data.image.resize: true to resize)"


def test_damaged_files_and_other_files_get_reasons():
    good = _png(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8), "L")
    pixels, reason = decode(good[:len(good) // 2], ImageConfig(height=28, width=28))
    assert pixels is None and "does not decode as an image" in reason
    pixels, reason = decode(b"hello, not a picture\n", ImageConfig(height=28, width=28))
    assert pixels is None and reason == "is not an image file (Pillow recognizes no image format in it)"
