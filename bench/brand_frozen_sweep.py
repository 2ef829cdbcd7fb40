"""Could another frozen-feature model reach the brand target? A wider sweep than training's.

For each input size, the dataset's photos are embedded into the shared space (VGG16, three
pooled blocks: block 3, 4 and 5, 256 + 512 + 512 values) and every pooled block, alone and
together, is scored with a logistic regression and an RBF SVM over a grid of C. The model
is chosen on the validation split; its test accuracy is reported (and, for reference only,
the best test accuracy of the grid, which no honest choice could have picked).

    python bench/brand_frozen_sweep.py --home DATA_HOME --manifest DATASET.json \\
        --weights vgg16_notop.weights.h5 --size 64 --size 128 --size 224 \\
        --out bench/results/brand-frozen-sweep.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from baghunter.config import Settings

# Slices of a three-block pooled vector (VGG16: block3 256, block4 512, block5 512).
BLOCKS = {"b3": (0, 256), "b4": (256, 768), "b5": (768, 1280), "b3-5": (0, 1280)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="data home with the photos")
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--size", type=int, action="append", required=True)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from baghunter.dataset.manifest import Manifest
    from baghunter.embeddings.model import Embedder, EmbedderSpec
    from baghunter.embeddings.pipeline import embed_missing, vector_store

    settings = Settings(_env_file=None, home=args.home, store="embedded", weights=args.weights)  # type: ignore[call-arg]
    manifest = Manifest.load(args.manifest)
    rows: list[dict[str, Any]] = []
    for size in args.size:
        embedder = Embedder(EmbedderSpec(weights=args.weights, image_size=size))
        started = time.perf_counter()
        embed_missing(embedder, settings, {e.sha256: e.path for e in manifest.entries})
        store = vector_store(settings, embedder.space)
        splits = {}
        for split in ("train", "val", "test"):
            entries = manifest.split(split)
            _, x = store.load([e.sha256 for e in entries])
            splits[split] = (x, np.array([manifest.classes.index(e.label) for e in entries]))
        for block, (lo, hi) in BLOCKS.items():
            row = score({k: (x[:, lo:hi], y) for k, (x, y) in splits.items()})
            rows.append({"size": size, "block": block, **row})
            print(json.dumps(rows[-1]), flush=True)
        print(f"size {size}: {time.perf_counter() - started:.0f} s", flush=True)
    best = max(rows, key=lambda r: r["val_accuracy"])
    result = {"dataset": manifest.version, "chosen_on_val": best, "rows": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(best))


def score(splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """The grid point with the best validation accuracy, and its test accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        splits["train"],
        splits["val"],
        splits["test"],
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_val, x_test = (scaler.transform(x) for x in (x_train, x_val, x_test))
    grid: list[tuple[str, Any]] = [
        (f"logistic C={c}", LogisticRegression(C=c, max_iter=3000, class_weight="balanced"))
        for c in (0.001, 0.003, 0.01, 0.03, 0.1)
    ] + [(f"rbf-svm C={c}", SVC(C=c, class_weight="balanced")) for c in (1, 3, 10)]
    scored = []
    for name, model in grid:
        model.fit(x_train, y_train)
        scored.append((model.score(x_val, y_val), model.score(x_test, y_test), name))
    val, test, name = max(scored)
    return {
        "model": name,
        "val_accuracy": round(val, 4),
        "test_accuracy": round(test, 4),
        "best_test_in_grid": round(max(s[1] for s in scored), 4),
    }


if __name__ == "__main__":
    main()
