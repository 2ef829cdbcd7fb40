"""Near-duplicate detection on real catalog photos: the classic 64-bit pHash vs Bag Hunter's
256-bit hash, side by side on the same images.

For each hash and threshold it reports how the near-duplicate graph behaves (groups, the
largest connected component, images in groups): a hash that cannot tell similar catalog
shots apart chains thousands of different products into one component, which would force
them all into one split. It also reports the distance between each sampled photo and an
edited copy (resized, re-encoded, cropped, rotated), the recall side.

    python bench/dedupe_bench.py --images DIR [--limit 12000] [--copies 300]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from baghunter.images.phash import near_duplicate_groups, phash


def phash64(image: Image.Image) -> str:
    """The classic pHash: 32x32 grey, 8x8 lowest DCT frequencies, median threshold."""
    side = 32
    k = np.arange(side)[:, None]
    i = np.arange(side)[None, :]
    dct = np.cos(np.pi * (2 * i + 1) * k / (2 * side))
    pixels = np.asarray(image.convert("L").resize((side, side), Image.Resampling.LANCZOS), float)
    low = (dct @ pixels @ dct.T)[:8, :8]
    return np.packbits((low > np.median(low)).ravel()).tobytes().hex()


def groups_64(items: list[tuple[str, str, str]], max_distance: int) -> dict[str, str]:
    """Connected components for 64-bit hashes (brute force in blocks; fine at this size)."""
    values = np.array([int(h, 16) for _, _, h in items], dtype=np.uint64)
    parent = list(range(len(items)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for start in range(0, len(values), 1024):
        close = (
            np.bitwise_count(values[start : start + 1024, None] ^ values[None, :]) <= max_distance
        )
        for a, b in zip(*np.nonzero(close), strict=True):
            if a + start < b:
                parent[find(int(a) + start)] = find(int(b))
    return {items[i][0]: str(find(i)) for i in range(len(items))}


def graph_report(groups: dict[str, str]) -> dict[str, int]:
    sizes = sorted(n for n in Counter(groups.values()).values() if n > 1)
    return {"groups": len(sizes), "largest": sizes[-1] if sizes else 0, "in_groups": sum(sizes)}


EDITS = {
    "resize x2": lambda im: im.resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC),
    "jpeg q60": lambda im: _jpeg(im, 60),
    "crop 3%": lambda im: im.crop(
        (
            max(1, im.width * 3 // 200),
            max(1, im.height * 3 // 200),
            im.width - max(1, im.width * 3 // 200),
            im.height - max(1, im.height * 3 // 200),
        )
    ),
    "rotate 2°": lambda im: im.rotate(
        2, resample=Image.Resampling.BICUBIC, fillcolor=(255, 255, 255)
    ),
}


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="folder of catalog photos")
    parser.add_argument("--limit", type=int, default=12_000)
    parser.add_argument("--copies", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("bench/results/dedupe.json"))
    args = parser.parse_args()

    paths = sorted(args.images.glob("*.jpg"))[: args.limit]
    images = []
    for path in paths:
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
    report: dict = {"images": len(images)}
    for name, fn, thresholds, grouper in (
        ("phash64", phash64, (0, 2, 4, 6), groups_64),
        ("phash256", phash, (8, 16, 24, 32), near_duplicate_groups),
    ):
        start = time.perf_counter()
        hashes = [fn(im) for im in images]
        report[f"{name}_hash_s"] = time.perf_counter() - start
        items = [(str(p), str(i), h) for i, (p, h) in enumerate(zip(paths, hashes, strict=True))]
        report[name] = {f"<= {t}": graph_report(grouper(items, t)) for t in thresholds}
        rng = random.Random(0)
        sample = rng.sample(range(len(images)), min(args.copies, len(images)))
        report[f"{name}_edit_distance"] = {
            edit: {
                "p50": float(
                    np.percentile(d := [hamming(hashes[i], fn(f(images[i]))) for i in sample], 50)
                ),
                "p95": float(np.percentile(d, 95)),
                "max": int(max(d)),
            }
            for edit, f in EDITS.items()
        }
        print(f"[{name}] " + json.dumps({k: v for k, v in report.items() if k.startswith(name)}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
