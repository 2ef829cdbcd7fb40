"""A tiny synthetic brand dataset: real image files on disk plus their Manifest.

Each "brand" is a distinct colour *and* shape at a random position and scale on a noisy
background, saved as JPEG or PNG at varying sizes, so the pipeline decodes both formats,
resizes every image, and a small model can learn the task well above chance in seconds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from baghunter.dataset.manifest import Manifest, ManifestEntry, Split

# brand -> (RGB colour, shape)
BRANDS: dict[str, tuple[tuple[int, int, int], str]] = {
    "amber": ((230, 150, 20), "circle"),
    "cobalt": ((30, 60, 200), "square"),
    "jade": ((20, 160, 80), "triangle"),
}
PER_SPLIT: dict[Split, int] = {"train": 14, "val": 4, "test": 5}
SEED = 7


def draw_bag(rng: np.random.Generator, colour: tuple[int, int, int], shape: str) -> Image.Image:
    """One synthetic product photo: a jittered coloured shape on a noisy light background."""
    width, height = (int(v) for v in rng.integers(40, 97, size=2))
    background = rng.normal(225, 12, size=(height, width, 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(background)
    side = int(rng.uniform(0.45, 0.7) * min(width, height))
    left = int(rng.integers(0, width - side + 1))
    top = int(rng.integers(0, height - side + 1))
    jitter = rng.integers(-20, 21, size=3)
    fill = tuple(int(c) for c in np.clip(np.array(colour) + jitter, 0, 255))
    box = (left, top, left + side, top + side)
    draw = ImageDraw.Draw(image)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon(
            [(left, top + side), (left + side, top + side), (left + side // 2, top)], fill=fill
        )
    return image


def make_dataset(root: Path, seed: int = SEED) -> Manifest:
    rng = np.random.default_rng(seed)
    entries = []
    for brand, (colour, shape) in BRANDS.items():
        for split, count in PER_SPLIT.items():
            for i in range(count):
                suffix = "jpg" if i % 2 else "png"
                path = root / f"{brand}-{split}-{i}.{suffix}"
                draw_bag(rng, colour, shape).save(path)
                sha = hashlib.sha256(path.read_bytes()).hexdigest()
                entries.append(
                    ManifestEntry(path=str(path), label=brand, split=split, group=sha, sha256=sha)
                )
    return Manifest.from_entries(entries, params={"synthetic_seed": seed})


@pytest.fixture(scope="session")
def synthetic_manifest(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """3 brands x 23 images (14 train / 4 val / 5 test), made once per test session."""
    return make_dataset(tmp_path_factory.mktemp("synthetic-bags"))
