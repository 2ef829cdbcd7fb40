"""Which pooled features to share: last-block GAP vs multi-scale GAP, and input size.

Side by side in one run on real catalog photos (a styles.csv-shaped catalog): the same
frozen VGG16 pass yields both the baseline (global average of the last conv block, 512 d)
and the shared embedding (averages of the last three blocks, 1280 d); a logistic-regression
probe per attribute, trained on 80% of the photos and scored on the rest, measures how much
of each attribute the features carry. Throughput is measured per input size.

    python bench/embedding_bench.py --csv styles.csv --images images/ \
        --weights vgg16_notop.weights.h5 --n 3000 --sizes 64 96 [--features HOME/features]

With ``--features``, it also times loading every vector space stored there (what the
similar index build and the attribute training read).
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import Counter
from pathlib import Path

import keras
import numpy as np

from baghunter.embeddings.model import pooled_blocks
from baghunter.training.backbones import build_backbone, preprocess_layer
from baghunter.training.data import path_dataset

ATTRIBUTES = ("articleType", "baseColour", "gender")


def taps_model(weights: str, size: int) -> keras.Model:
    backbone = build_backbone("vgg16", weights, size)
    images = keras.Input((size, size, 3), dtype="uint8")
    taps = keras.Model(
        backbone.inputs, [backbone.get_layer(n).output for n in pooled_blocks(backbone)]
    )
    maps = taps(preprocess_layer("vgg16")(images))
    return keras.Model(images, [keras.layers.GlobalAveragePooling2D()(m) for m in maps])


def probe(features: np.ndarray, labels: np.ndarray, train: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    counts = Counter(labels[train])
    known = np.array([counts[label] >= 10 for label in labels])  # classes a probe can learn
    x = StandardScaler().fit(features[train & known]).transform(features)
    model = LogisticRegression(max_iter=300, C=0.1).fit(x[train & known], labels[train & known])
    test = ~train & known
    return float((model.predict(x[test]) == labels[test]).mean())


def time_loads(root: Path) -> None:
    from baghunter.embeddings.vectors import VectorStore

    for space in sorted(p.name for p in root.iterdir() if (p / "shard-000001.npz").is_file()):
        store = VectorStore(root, space)
        started = time.perf_counter()
        shas, matrix = store.load()
        seconds = time.perf_counter() - started
        print(
            f"{space}: {len(shas)} vectors x {matrix.shape[1]} in {store.shard_count} shards, "
            f"{matrix.nbytes / 1e6:.0f} MB, loaded in {seconds:.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64])
    parser.add_argument("--features", type=Path, help="a data home's features/ folder")
    args = parser.parse_args()
    if args.features is not None:
        time_loads(args.features)

    with args.csv.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if (args.images / f"{r['id']}.jpg").is_file()]
    rng = np.random.default_rng(0)
    rows = [rows[i] for i in rng.permutation(len(rows))[: args.n]]
    paths = [str(args.images / f"{r['id']}.jpg") for r in rows]
    train = np.arange(len(rows)) < int(0.8 * len(rows))
    print(f"{len(rows)} photos, probe trained on {train.sum()}, scored on {(~train).sum()}")
    for size in args.sizes:
        model = taps_model(args.weights, size)
        model.predict_on_batch(np.zeros((1, size, size, 3), np.uint8))  # trace once
        started = time.perf_counter()
        blocks: list[list[np.ndarray]] = [[], [], []]
        for batch in path_dataset(paths, size).batch(64):
            for i, out in enumerate(model.predict_on_batch(batch)):
                blocks[i].append(np.asarray(out))
        rate = len(paths) / (time.perf_counter() - started)
        last = np.concatenate(blocks[2])
        multi = np.hstack([np.concatenate(b) for b in blocks])
        print(f"\n{size} px: {rate:.1f} images/s (decode + VGG16, batch 64)")
        print(
            f"{'attribute':<12} {'last block (512 d)':>20} "
            f"{'3 blocks (1280 d)':>19} {'majority':>9}"
        )
        for attribute in ATTRIBUTES:
            labels = np.array([r[attribute] for r in rows])
            majority = Counter(labels[train]).most_common(1)[0][0]
            print(
                f"{attribute:<12} {probe(last, labels, train):>20.3f} "
                f"{probe(multi, labels, train):>19.3f} {(labels[~train] == majority).mean():>9.3f}"
            )


if __name__ == "__main__":
    main()
