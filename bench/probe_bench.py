"""How separable are a dataset's brands with frozen VGG16 features? A linear-probe ceiling.

A logistic regression on the backbone's features (train + validation → test), pooled
(what the classifier head sees) and flattened (spatial layout kept). When a fine-tuned model
scores near this probe, the limit is the data at that resolution, not the training loop.

    python bench/probe_bench.py --manifest DATASET.json --weights vgg16_notop.weights.h5 \
        [--image-size 128]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from baghunter.dataset.manifest import Manifest
from baghunter.training.data import load_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--weights", required=True, help="VGG16 notop .weights.h5 (or imagenet)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("bench/results/probe.json"))
    args = parser.parse_args()

    import keras
    from sklearn.linear_model import LogisticRegression

    manifest = Manifest.load(args.manifest)
    size = args.image_size
    weights = "imagenet" if args.weights == "imagenet" else None
    base = keras.applications.VGG16(include_top=False, weights=weights, input_shape=(size, size, 3))
    if weights is None:
        base.load_weights(args.weights)

    def features(entries: list) -> tuple[np.ndarray, np.ndarray]:
        pixels = load_images([e.path for e in entries], size).astype("float32")
        maps = base.predict(keras.applications.vgg16.preprocess_input(pixels), verbose=0)
        return maps.mean(axis=(1, 2)), maps.reshape(len(maps), -1)

    start = time.perf_counter()
    fit_entries = manifest.split("train") + manifest.split("val")
    test_entries = manifest.split("test")
    pooled_fit, flat_fit = features(fit_entries)
    pooled_test, flat_test = features(test_entries)
    y_fit = [e.label for e in fit_entries]
    y_test = np.array([e.label for e in test_entries])
    report = {
        "dataset": manifest.version,
        "classes": manifest.classes,
        "image_size": size,
        "fit_images": len(fit_entries),
        "test_images": len(test_entries),
        "feature_seconds": time.perf_counter() - start,
    }
    variants = (("pooled", pooled_fit, pooled_test), ("flattened", flat_fit, flat_test))
    for name, fit, test in variants:
        probe = LogisticRegression(max_iter=3000).fit(fit, y_fit)
        report[f"{name}_test_accuracy"] = float((probe.predict(test) == y_test).mean())
    print(json.dumps(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
