"""Similar-product search: exact vs HNSW on the real catalog's embeddings and beyond.

Builds both engines of :class:`baghunter.similar.index.SimilarIndex` over one embedding
space, holds out ``--queries`` catalog images as queries (a new photo is not in the
index), and reports build time, single-query latency (p50/p99, one query at a time, as
the serving endpoint asks) and HNSW's recall@10 against exact search. Then the same at a
larger synthetic size: real vectors tiled with noise, to show where exact search stops
being interactive. With ``--catalog-home`` it also measures what the neighbours are
worth: the share of the 10 nearest catalog products with the query's article type, for
raw cosine and for cosine after subtracting the catalog's mean vector.

    python bench/similar_bench.py --features HOME/features [--space NAME] \
        [--catalog-home HOME] [--synthetic 200000] [--out bench/results/similar.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from baghunter.embeddings.vectors import VectorStore
from baghunter.similar import index as similar
from baghunter.similar.index import SimilarIndex


def _latency(index: SimilarIndex, queries: np.ndarray, k: int = 10) -> dict[str, float]:
    index.search(queries[:5], k)  # warm caches and thread pools
    times = []
    for query in queries:
        start = time.perf_counter()
        index.search(query[None, :], k)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "p50_ms": round(float(np.percentile(times, 50)), 3),
        "p99_ms": round(float(np.percentile(times, 99)), 3),
    }


def _recall(exact_rows: np.ndarray, approx_rows: np.ndarray) -> float:
    hits = [len(set(a) & set(b)) for a, b in zip(exact_rows, approx_rows, strict=True)]
    return round(sum(hits) / exact_rows.size, 4)


def compare(
    vectors: np.ndarray, queries: np.ndarray, label: str, ef_values: list[int]
) -> dict[str, Any]:
    shas = [f"{i:064x}" for i in range(len(vectors))]
    result: dict[str, Any] = {"label": label, "vectors": len(vectors), "dim": vectors.shape[1]}

    start = time.perf_counter()
    exact = SimilarIndex.from_arrays("bench", shas, vectors, engine="exact", center=True)
    result["exact"] = {"build_s": round(time.perf_counter() - start, 2)}
    result["exact"].update(_latency(exact, queries))
    _, truth = exact.search(queries, 10)
    print(label, "exact", result["exact"], flush=True)

    start = time.perf_counter()
    approx = SimilarIndex.from_arrays("bench", shas, vectors, engine="hnsw", center=True)
    result["hnsw"] = {
        "build_s": round(time.perf_counter() - start, 2),
        "m": similar.HNSW_M,
        "ef_construction": similar.HNSW_EF_CONSTRUCTION,
        "by_ef_search": {},
    }
    default_ef = similar.HNSW_EF_SEARCH
    try:
        for ef in ef_values:
            similar.HNSW_EF_SEARCH = ef
            _, found = approx.search(queries, 10)
            row = {"recall_at_10": _recall(truth, found), **_latency(approx, queries)}
            result["hnsw"]["by_ef_search"][str(ef)] = row
            print(label, "hnsw ef", ef, row, flush=True)
    finally:
        similar.HNSW_EF_SEARCH = default_ef
    return result


def neighbour_quality(
    shas: list[str], matrix: np.ndarray, home: Path, queries: int, attribute: str = "articleType"
) -> dict[str, Any]:
    """Precision@10 of ``attribute`` among held-out queries' neighbours, raw vs centered."""
    from baghunter.config import Settings
    from baghunter.store import open_store

    label: dict[str, str] = {}
    with open_store(Settings(home=home, store="embedded")) as store:
        for row in store.iter_catalog_images():
            value = row.attributes.get(attribute)
            if value is not None:
                label.setdefault(row.sha256, value)
    known = [i for i, sha in enumerate(shas) if sha in label]
    rng = np.random.default_rng(1)
    picked = rng.permutation(known)
    asked, rest = picked[:queries], picked[queries:]
    labels = np.array([label[shas[i]] for i in rest])
    result: dict[str, Any] = {"attribute": attribute, "queries": len(asked)}
    for center in (False, True):
        index = SimilarIndex.from_arrays(
            "q", [shas[i] for i in rest], matrix[rest], engine="exact", center=center
        )
        _, rows = index.search(matrix[asked], 10)
        truth = np.array([label[shas[i]] for i in asked])
        precision = float((labels[rows] == truth[:, None]).mean())
        result["centered" if center else "raw"] = round(precision, 4)
    # What guessing the most common type would score, for scale.
    _, counts = np.unique(labels, return_counts=True)
    result["majority_share"] = round(float(counts.max() / counts.sum()), 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, required=True, help="a data home's features/")
    parser.add_argument("--space", help="vector space (default: the largest *-gap3 space)")
    parser.add_argument("--catalog-home", type=Path, help="data home with the catalog store")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--synthetic", type=int, default=200_000, help="0 to skip")
    parser.add_argument("--noise", type=float, default=0.3, help="of each dimension's std")
    parser.add_argument("--ef", type=int, nargs="*", default=[16, 32, 64, 128])
    parser.add_argument("--out", type=Path, default=Path("bench/results/similar.json"))
    args = parser.parse_args()

    spaces = sorted(
        (p for p in args.features.iterdir() if p.is_dir() and p.name.endswith("-gap3")),
        key=lambda p: len(VectorStore(args.features, p.name)),
    )
    space = args.space or spaces[-1].name
    all_shas, matrix = VectorStore(args.features, space).load()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(matrix))
    queries, catalog = matrix[order[: args.queries]], matrix[order[args.queries :]]
    print(f"space {space}: {len(catalog)} vectors of {catalog.shape[1]} d", flush=True)

    import faiss

    report: dict[str, Any] = {
        "space": space,
        "queries": args.queries,
        "threads": faiss.omp_get_max_threads(),
        "runs": [compare(catalog, queries, "catalog", args.ef)],
    }
    if args.catalog_home:
        report["quality"] = neighbour_quality(all_shas, matrix, args.catalog_home, args.queries)
        print("quality", report["quality"], flush=True)
    if args.synthetic:
        # Tiled real vectors plus Gaussian noise: the catalog's structure (clusters of
        # similar products) at a larger size, without duplicated points.
        picks = rng.integers(0, len(catalog), args.synthetic)
        scale = args.noise * catalog.std(axis=0)
        big = np.empty((args.synthetic, catalog.shape[1]), np.float32)
        for start in range(0, args.synthetic, 50_000):
            block = picks[start : start + 50_000]
            noise = rng.normal(size=(len(block), catalog.shape[1])).astype(np.float32) * scale
            big[start : start + len(block)] = catalog[block] + noise
        report["runs"].append(compare(big, queries, f"synthetic-{args.synthetic}", args.ef))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
