"""Transformed copies of a photo: the edits a re-listed product photo goes through."""

from __future__ import annotations

import io
import random

from PIL import Image

TRANSFORMS = ("resize", "crop", "jpeg", "rotate")


def transformed(jpeg: bytes, kind: str, seed: int) -> bytes:
    """``jpeg`` after one edit, re-encoded as JPEG (strength drawn from ``seed``)."""
    rng = random.Random(seed)
    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    width, height = image.size
    quality = 90
    if kind == "resize":  # another catalog's thumbnail size
        scale = rng.uniform(0.6, 1.4)
        size = (round(width * scale), round(height * scale))
        image = image.resize(size, Image.Resampling.BICUBIC)
    elif kind == "crop":  # 5-10% trimmed off, unevenly
        frac = rng.uniform(0.05, 0.10)
        dx, dy = round(width * frac), round(height * frac)
        left, top = rng.randint(0, dx), rng.randint(0, dy)
        image = image.crop((left, top, width - (dx - left), height - (dy - top)))
    elif kind == "jpeg":  # heavy re-compression
        quality = rng.randint(30, 50)
    elif kind == "rotate":  # a slightly tilted re-shoot or scan, corners filled white
        angle = rng.uniform(2, 5) * rng.choice((-1, 1))
        image = image.rotate(angle, Image.Resampling.BICUBIC, fillcolor=(255, 255, 255))
    else:
        raise ValueError(f"unknown transform {kind!r}")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()
