"""Near-duplicate detection on real catalog photos: pHash, embedding, and both.

Takes ``--originals`` real photos, makes one copy of each with every edit a re-listed
photo goes through (resize, 5-10% crop, JPEG quality 30-50, 2-5 degree rotation), and
scores every (copy, its original) pair as a positive and every pair of *different*
originals - and every copy against the other originals - as a negative. For each way of
deciding "same photo" it reports the recall on positives at a fixed false-match rate
(the share of negatives matched): pHash Hamming distance alone, embedding cosine alone
(centered, as the index compares, and raw), and the combination used by
:mod:`baghunter.similar.duplicates` (pHash within 24 bits, or cosine above a threshold
with a loose pHash guard), with the guard and threshold chosen here. Then the
originals and their copies are grouped the way ``baghunter similar dedupe`` groups a
catalog and scored Shopee-style (label group = an original and its copies).

With ``--catalog-home`` (a data home whose catalog is embedded in the same space), the
whole catalog is also grouped, read-only, with pHash alone and with the chosen rules, to
show what the rules do at catalog scale (group count, largest group: chaining).

    python bench/neardup_bench.py --images images-60x80/ --weights vgg16_notop.weights.h5 \
        [--originals 1000] [--catalog-home HOME] [--out bench/results/neardup.json]
    # only the catalog part, with the rules and space of an earlier run:
    python bench/neardup_bench.py --catalog-home HOME --rules-from bench/results/neardup.json
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/

from baghunter.images.phash import parse_hashes, phash
from baghunter.similar.duplicates import DuplicateRules, group_images
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
    if allowed < 0:  # pHash within 24 bits alone already matches more negatives than that
        return {**best, "feasible": False}
    for guard in GUARDS:
        eligible = (neg_h > PHASH_DISTANCE) & (neg_h <= guard)
        t = _threshold(neg_c[eligible], allowed)
        hit = (pos_h <= PHASH_DISTANCE) | ((pos_h <= guard) & (pos_c > t))
        if hit.mean() > best["recall"]:
            best = {"recall": float(hit.mean()), "guard": guard, "min_cosine": t}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, help="folder of catalog photos")
    parser.add_argument("--weights", help="VGG16 notop .weights.h5 (or imagenet)")
    parser.add_argument("--originals", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--catalog-home", type=Path, help="also group this embedded catalog")
    parser.add_argument("--cache", type=Path, help="npz keeping pHashes and embeddings")
    parser.add_argument("--rules-from", type=Path, help="an earlier report: catalog part only")
    parser.add_argument("--out", type=Path, default=Path("bench/results/neardup.json"))
    args = parser.parse_args()
    if args.rules_from:
        if not args.catalog_home:
            parser.error("--rules-from needs --catalog-home")
        earlier = json.loads(args.rules_from.read_text())
        rules = DuplicateRules(**earlier["grouping"]["rules"])
        center = earlier["grouping"]["center"]
        earlier["catalog"] = catalog_grouping(args.catalog_home, earlier["space"], rules, center)
        print(json.dumps(earlier["catalog"], indent=2))
        args.rules_from.write_text(json.dumps(earlier, indent=2))
        return
    if not (args.images and args.weights):
        parser.error("--images and --weights are required")

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
    shas = [hashlib.sha256(jpeg).hexdigest() for _, _, jpeg in photos]

    hashes, vectors, space, timings = _features(photos, shas, args)
    print(f"{len(photos)} photos: {timings}", flush=True)

    words = parse_hashes(hashes)
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

    pos_h, neg_h = distance[positive], distance[negative]
    report: dict[str, Any] = {
        "originals": args.originals,
        "photos": len(photos),
        "positives": int(positive.sum()),
        "negatives": int(negative.sum()),
        # Different product ids, (nearly) the same photo: real duplicates in the catalog
        # that this benchmark has to count as false matches.
        "negatives_within_phash_24": int((neg_h <= PHASH_DISTANCE).sum()),
        "space": space,
        **timings,
        "at_fmr": {},
    }
    pos_kind = np.broadcast_to(kinds[:, None], positive.shape)[positive]
    for fmr in FMRS:
        entry: dict[str, Any] = {}
        recall, t = recall_at(-pos_h.astype(float), -neg_h.astype(float), fmr)
        entry["phash"] = {"recall": recall, "max_distance": -t}
        for name in ("raw", "centered"):
            pos_c, neg_c = cosine[name][positive], cosine[name][negative]
            recall, t = recall_at(pos_c, neg_c, fmr)
            entry[f"embedding_{name}"] = {"recall": recall, "min_cosine": t}
            entry[f"combined_{name}"] = combined_at(pos_h, pos_c, neg_h, neg_c, fmr)
        by_edit = {}
        for kind in TRANSFORMS:
            mask = pos_kind == kind
            by_edit[kind] = {
                "phash": float((pos_h[mask] <= entry["phash"]["max_distance"]).mean()),
            }
            for name in ("raw", "centered"):
                pos_c = cosine[name][positive][mask]
                best = entry[f"combined_{name}"]
                hit = pos_h[mask] <= PHASH_DISTANCE
                if best.get("guard") is not None:
                    hit = hit | ((pos_h[mask] <= best["guard"]) & (pos_c > best["min_cosine"]))
                by_edit[kind][f"embedding_{name}"] = float(
                    (pos_c > entry[f"embedding_{name}"]["min_cosine"]).mean()
                )
                by_edit[kind][f"combined_{name}"] = float(hit.mean())
        entry["by_edit"] = by_edit
        report["at_fmr"][str(fmr)] = entry
        print(fmr, json.dumps(entry), flush=True)

    report["grouping"] = grouping(report["at_fmr"]["1e-05"], photos, shas, hashes, vectors)
    print(json.dumps(report["grouping"], indent=2), flush=True)
    if args.catalog_home:
        rules = DuplicateRules(**report["grouping"]["rules"])
        center = report["grouping"]["center"]
        report["catalog"] = catalog_grouping(args.catalog_home, space, rules, center)
        print(json.dumps(report["catalog"], indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


def _features(
    photos: list[tuple[int, str, bytes]], shas: list[str], args: argparse.Namespace
) -> tuple[list[str], np.ndarray, str, dict[str, float]]:
    """pHashes and embeddings of the photos, from ``--cache`` when it holds these photos."""
    if args.cache and args.cache.is_file():
        with np.load(args.cache) as cached:
            if cached["sha256"].tolist() == shas:
                print(f"features from {args.cache}", flush=True)
                timings = json.loads(str(cached["timings"]))
                return cached["phash"].tolist(), cached["vectors"], str(cached["space"]), timings
    from baghunter.embeddings.model import Embedder, EmbedderSpec

    started = time.perf_counter()
    hashes = [phash(Image.open(io.BytesIO(jpeg))) for _, _, jpeg in photos]
    phash_s = time.perf_counter() - started
    embedder = Embedder(EmbedderSpec("vgg16", args.weights, args.image_size))
    pixels = [np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")) for _, _, jpeg in photos]
    started = time.perf_counter()
    vectors = embedder.embed_arrays(pixels, batch_size=64)
    timings = {
        "phash_seconds": round(phash_s, 1),
        "embed_seconds": round(time.perf_counter() - started, 1),
    }
    if args.cache:
        np.savez(
            args.cache,
            sha256=np.array(shas),
            phash=np.array(hashes),
            vectors=vectors,
            space=embedder.space,
            timings=json.dumps(timings),
        )
    return hashes, vectors, embedder.space, timings


def grouping(
    at_fmr: dict[str, Any],
    photos: list[tuple[int, str, bytes]],
    shas: list[str],
    hashes: list[str],
    vectors: np.ndarray,
) -> dict[str, Any]:
    """Group all photos as `baghunter similar dedupe` would, with the better cosine's rules."""
    name = max(("raw", "centered"), key=lambda n: at_fmr[f"combined_{n}"]["recall"])
    best = at_fmr[f"combined_{name}"]
    rules = DuplicateRules(
        phash_max_distance=PHASH_DISTANCE,
        min_cosine=round(best.get("min_cosine", 1.0), 4),
        phash_guard=best.get("guard") or 256,
    )
    embedding_only = replace(
        rules,
        phash_max_distance=None,
        min_cosine=round(at_fmr[f"embedding_{name}"]["min_cosine"], 4),
    )
    distinct = dict.fromkeys(shas)
    keep = [shas.index(sha) for sha in distinct]
    center = name == "centered"
    index = SimilarIndex.from_arrays("bench", list(distinct), vectors[keep], center=center)
    truth = [n for n, _, _ in photos]
    result: dict[str, Any] = {"center": center, "rules": asdict(rules)}
    for mode, mode_rules in (
        ("phash", rules.only("phash")),
        ("embedding", embedding_only),
        ("combined", rules),
    ):
        groups, stats = group_images(list(distinct), [hashes[i] for i in keep], mode_rules, index)
        predicted = [groups[sha] for sha in shas]
        result[mode] = {"f1": round(mean_f1(truth, predicted), 4), **stats.to_dict()}
    result["singletons_f1"] = round(mean_f1(truth, list(range(len(photos)))), 4)
    return result


def catalog_grouping(home: Path, space: str, rules: DuplicateRules, center: bool) -> dict[str, Any]:
    """Group a whole embedded catalog with pHash alone and with ``rules``; nothing is written."""
    from baghunter.config import Settings
    from baghunter.embeddings.vectors import VectorStore
    from baghunter.store import open_store

    settings = Settings(home=home, store="embedded")
    with open_store(settings) as store:
        hashes = store.image_hashes()
    phash_of: dict[str, str] = {}
    for _, sha, hashed in hashes:
        phash_of.setdefault(sha, hashed)
    vectors = VectorStore(settings.features_dir, space)
    have = [sha for sha in phash_of if sha in vectors]
    shas, matrix = vectors.load(have)
    started = time.perf_counter()
    index = SimilarIndex.from_arrays(space, shas, matrix, center=center)
    result: dict[str, Any] = {
        "images": len(phash_of),
        "embedded": len(have),
        "index_engine": index.engine,
        "index_seconds": round(time.perf_counter() - started, 2),
    }
    variants = {
        "phash": rules.only("phash"),
        "combined": rules,
        "combined_one_sided_10": replace(rules, neighbours=10, mutual=False),
    }
    for mode, mode_rules in variants.items():
        groups, stats = group_images(list(phash_of), list(phash_of.values()), mode_rules, index)
        sizes: dict[str, int] = {}
        for group in groups.values():
            sizes[group] = sizes.get(group, 0) + 1
        result[mode] = {
            **stats.to_dict(),
            "images_in_groups": sum(size for size in sizes.values() if size > 1),
        }
    return result


if __name__ == "__main__":
    main()
