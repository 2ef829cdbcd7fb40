"""Near-duplicate detection on real catalog photos: pHash, embedding, and both.

Takes ``--originals`` real photos, makes one copy of each with every edit a re-listed
photo goes through (resize, 5-10% crop, JPEG quality 30-50, 2-5 degree rotation), and
scores every (copy, its original) pair as a positive and every pair of *different*
originals - and every copy against the other originals - as a negative. For each way of
deciding "same photo" it reports the recall on positives at a fixed false-match rate
(the share of negatives matched): pHash Hamming distance alone, embedding cosine alone
(centered, as the index compares, and raw), and the combination used by
:mod:`baghunter.similar.duplicates` (pHash within 24 bits, or cosine above a threshold
with a loose pHash guard), with the guard and threshold chosen here. Finally the
originals and their copies are grouped the way ``baghunter similar dedupe`` groups a
catalog and scored Shopee-style (label group = an original and its copies).

    python bench/neardup_bench.py --images images-60x80/ --weights vgg16_notop.weights.h5 \
        [--originals 1000] [--out bench/results/neardup.json]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/

from baghunter.images.phash import phash
from baghunter.similar.duplicates import DuplicateRules, group_images, phash_words
from baghunter.similar.index import SimilarIndex
from baghunter.similar.matching import mean_f1
from tests.similar.copies import TRANSFORMS, transformed

PHASH_DISTANCE = 24  # the catalog's pHash threshold (settings.phash_max_distance)
GUARDS = (48, 64, 80, 96, 112, 128, 256)
FMRS = (1e-4, 1e-5, 1e-6)


def _threshold(negatives: np.ndarray, allowed: int) -> float:
    """Lowest score that at most ``allowed`` negatives exceed (a match is ``score > t``)."""
    if allowed >= len(negatives):
        return -np.inf
    return float(-np.partition(-negatives, allowed)[allowed])


def recall_at(positives: np.ndarray, negatives: np.ndarray, fmr: float) -> tuple[float, float]:
    """Recall and threshold of ``score > t`` with at most ``fmr`` of negatives matched."""
    t = _threshold(negatives, int(fmr * len(negatives)))
    return float((positives > t).mean()), t


def combined_at(
    pos_h: np.ndarray, pos_c: np.ndarray, neg_h: np.ndarray, neg_c: np.ndarray, fmr: float
) -> dict[str, Any]:
    """Best guard for: pHash within 24 bits, or (cosine > t and pHash within guard)."""
    allowed = int(fmr * len(neg_h)) - int((neg_h <= PHASH_DISTANCE).sum())
    best: dict[str, Any] = {"recall": float((pos_h <= PHASH_DISTANCE).mean()), "guard": None}
    if allowed < 0:
        return best
    for guard in GUARDS:
        eligible = (neg_h > PHASH_DISTANCE) & (neg_h <= guard)
        t = _threshold(neg_c[eligible], allowed)
        hit = (pos_h <= PHASH_DISTANCE) | ((pos_h <= guard) & (pos_c > t))
        if hit.mean() > best["recall"]:
            best = {"recall": float(hit.mean()), "guard": guard, "min_cosine": t}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="folder of catalog photos")
    parser.add_argument("--weights", required=True, help="VGG16 notop .weights.h5 (or imagenet)")
    parser.add_argument("--originals", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("bench/results/neardup.json"))
    args = parser.parse_args()

    from baghunter.embeddings.model import Embedder, EmbedderSpec

    rng = np.random.default_rng(0)
    files = sorted(args.images.glob("*.jpg"))
    chosen = [files[i] for i in sorted(rng.choice(len(files), args.originals, replace=False))]
    photos: list[tuple[int, str, bytes]] = []  # (original number, edit, jpeg)
    for n, path in enumerate(chosen):
        data = path.read_bytes()
        photos.append((n, "original", data))
        photos += [
            (n, kind, transformed(data, kind, seed=n * 10 + j)) for j, kind in enumerate(TRANSFORMS)
        ]
    owner = np.array([n for n, _, _ in photos])
    kinds = np.array([kind for _, kind, _ in photos])
    is_original = kinds == "original"

    started = time.perf_counter()
    hashes = [phash(Image.open(io.BytesIO(jpeg))) for _, _, jpeg in photos]
    phash_s = time.perf_counter() - started
    embedder = Embedder(EmbedderSpec("vgg16", args.weights, args.image_size))
    pixels = [np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")) for _, _, jpeg in photos]
    started = time.perf_counter()
    vectors = embedder.embed_arrays(pixels, batch_size=64)
    embed_s = time.perf_counter() - started
    print(f"{len(photos)} photos: pHash {phash_s:.1f} s, embedding {embed_s:.1f} s", flush=True)

    words = phash_words(hashes)
    centered = vectors - vectors.mean(axis=0)
    unit = {
        "centered": centered / np.linalg.norm(centered, axis=1, keepdims=True),
        "raw": vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
    }
    originals = np.flatnonzero(is_original)
    # Every photo against every original: positives where it is a copy of that original,
    # negatives where the original is another one (each pair of originals counted once).
    rows = np.arange(len(photos))
    distance = np.stack(
        [np.bitwise_count(words ^ words[o]).sum(axis=1) for o in originals], axis=1
    )  # (photos, originals)
    same = owner[:, None] == owner[originals][None, :]
    positive = same & ~is_original[:, None]
    negative = ~same & (~is_original[:, None] | (rows[:, None] < originals[None, :]))
    cosine = {name: u @ u[originals].T for name, u in unit.items()}
    print(f"{positive.sum()} positive and {negative.sum()} negative pairs", flush=True)

    report: dict[str, Any] = {
        "originals": args.originals,
        "photos": len(photos),
        "positives": int(positive.sum()),
        "negatives": int(negative.sum()),
        "space": embedder.space,
        "phash_seconds": round(phash_s, 1),
        "embed_seconds": round(embed_s, 1),
        "at_fmr": {},
    }
    pos_h, neg_h = distance[positive], distance[negative]
    pos_c, neg_c = cosine["centered"][positive], cosine["centered"][negative]
    pos_kind = np.broadcast_to(kinds[:, None], positive.shape)[positive]
    for fmr in FMRS:
        entry: dict[str, Any] = {}
        recall, t = recall_at(-pos_h.astype(float), -neg_h.astype(float), fmr)
        entry["phash"] = {"recall": recall, "max_distance": -t}
        for name in ("centered", "raw"):
            recall, t = recall_at(cosine[name][positive], cosine[name][negative], fmr)
            entry[f"embedding_{name}"] = {"recall": recall, "min_cosine": t}
        entry["combined"] = combined_at(pos_h, pos_c, neg_h, neg_c, fmr)
        by_kind = {}
        for kind in TRANSFORMS:
            mask = pos_kind == kind
            best = entry["combined"]
            guard = best.get("guard")
            hit = pos_h[mask] <= PHASH_DISTANCE
            if guard is not None:
                hit |= (pos_h[mask] <= guard) & (pos_c[mask] > best["min_cosine"])
            by_kind[kind] = {
                "phash": float((pos_h[mask] <= entry["phash"]["max_distance"]).mean()),
                "embedding": float(
                    (pos_c[mask] > entry["embedding_centered"]["min_cosine"]).mean()
                ),
                "combined": float(hit.mean()),
            }
        entry["by_edit"] = by_kind
        report["at_fmr"][str(fmr)] = entry
        print(fmr, json.dumps(entry), flush=True)

    # Grouping as `baghunter similar dedupe` does, with the rules found at FMR 1e-5.
    chosen_rules = report["at_fmr"]["1e-05"]["combined"]
    rules = DuplicateRules(
        phash_max_distance=PHASH_DISTANCE,
        min_cosine=min(1.0, max(chosen_rules.get("min_cosine", 1.0), 1e-6)),
        phash_guard=chosen_rules.get("guard") or 256,
        neighbours=10,
    )
    shas = [hashlib.sha256(jpeg).hexdigest() for _, _, jpeg in photos]
    distinct = dict.fromkeys(shas)
    keep = [shas.index(sha) for sha in distinct]
    index = SimilarIndex.from_arrays("bench", list(distinct), vectors[keep], center=True)
    grouping: dict[str, Any] = {"rules": rules.__dict__}
    truth = owner.tolist()
    for mode in ("phash", "embedding", "combined"):
        mode_rules = rules.only(mode)  # type: ignore[arg-type]
        if mode == "embedding":
            mode_rules = DuplicateRules(
                None, report["at_fmr"]["1e-05"]["embedding_centered"]["min_cosine"], 256, 10
            )
        groups, stats = group_images(list(distinct), [hashes[i] for i in keep], mode_rules, index)
        predicted = [groups[sha] for sha in shas]
        grouping[mode] = {"f1": round(mean_f1(truth, predicted), 4), **stats.to_dict()}
    grouping["singletons_f1"] = round(mean_f1(truth, list(range(len(photos)))), 4)
    report["grouping"] = grouping
    print(json.dumps(grouping, indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
