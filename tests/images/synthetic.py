"""Generated test images: varied "photos" from a seed, and hand-built hostile files.

Tests need many distinct, natural-looking images (for perceptual-hash statistics) and a
few files no camera produces (a decompression bomb), all reproducible and without any
fixture data checked into the repository.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def scene(seed: int, size: tuple[int, int] = (256, 192)) -> Image.Image:
    """A seeded RGB picture: lit gradient, soft texture and a few overlapping shapes.

    Every element (light direction, palette, texture, layout) comes from the seed, so two
    seeds give structurally different images, as two product photos are.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = xx * np.cos(angle) + yy * np.sin(angle)
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) or 1.0)
    start, end = rng.uniform(0, 255, (2, 3))
    pixels = start + ramp[..., None] * (end - start)

    coarse = rng.normal(0, 1, (5, 7)).astype(np.float32)
    texture = Image.fromarray(coarse, mode="F").resize(size, Image.Resampling.BICUBIC)
    pixels += np.asarray(texture, dtype=np.float64)[..., None] * rng.uniform(10, 40)

    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 7))):
        x0, x1 = sorted(rng.uniform(-0.1, 1.1, 2) * width)
        y0, y1 = sorted(rng.uniform(-0.1, 1.1, 2) * height)
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif kind == 1:
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            points = rng.uniform(0, 1, (int(rng.integers(3, 6)), 2)) * (width, height)
            draw.polygon([(float(x), float(y)) for x, y in points], fill=fill)
    return image.filter(ImageFilter.GaussianBlur(1.0))


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    """``image`` saved in ``fmt`` ("JPEG", "PNG", ...) as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid single-colour greyscale PNG of ``width`` x ``height``, compressed to a few KB.

    Written row by row with zlib rather than with Pillow, so making a 50-megapixel bomb
    does not itself allocate 50 MB in the test process.
    """
    compressor = zlib.compressobj(9)
    row = b"\x00" + bytes(width)  # filter byte "none", then black pixels
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
