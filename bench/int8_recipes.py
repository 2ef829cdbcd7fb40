"""Int8 quantization recipes for the brand champion, chosen on the validation split.

The fp32 export of the champion is quantized once per recipe (calibration method, how
many training photos calibrate, which operators are quantized); each int8 model's top-1
agreement with Keras is measured on the validation split (the choice) and on the test
split (reported, not chosen on), with its throughput in batches of 8.

    python bench/int8_recipes.py --mlflow-db BRAND_BENCH_WORK/mlflow.db \\
        --manifest BRAND_BENCH_WORK/<version>.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from baghunter import registry
from baghunter.config import Settings

log = logging.getLogger("int8_recipes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow-db", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--model", default="models:/bag-brand-classifier@champion")
    parser.add_argument("--out", type=Path, default=Path("bench/results/int8-recipes.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "tf2onnx", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from baghunter.dataset.manifest import Manifest
    from baghunter.engines.checks import top1_agreement
    from baghunter.engines.export import Int8Recipe, fixed_size_graph, quantize_int8, to_onnx
    from baghunter.engines.runners import KerasRunner, OnnxRunner, run_all, throughput
    from baghunter.inference import with_features
    from baghunter.training.data import load_images

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        home=Path(tempfile.mkdtemp()),
        store="embedded",
        mlflow_tracking_uri=f"sqlite:///{args.mlflow_db}",
    )
    registry.tracking(settings)
    loaded = registry.load_classifier(args.model)
    size = loaded.image_size
    manifest = Manifest.load(args.manifest)
    model = with_features(loaded.model)
    splits = {
        name: load_images([e.path for e in manifest.split(name)], size) for name in ("val", "test")
    }
    train = [e.path for e in manifest.split("train")]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(train))
    keras_runner = KerasRunner(model)
    reference = {name: run_all(keras_runner, photos) for name, photos in splits.items()}
    recipes = [
        (Int8Recipe(), 64),
        (Int8Recipe(), 256),
        (Int8Recipe("Percentile", 99.999), 256),
        (Int8Recipe("Percentile", 99.99), 256),
        (Int8Recipe("Entropy"), 256),
        (Int8Recipe(op_types=("Conv",)), 256),
        (Int8Recipe("Percentile", 99.999, ("Conv",)), 256),
        (Int8Recipe("Percentile", 99.999, ("Conv",), ("block1_conv1",)), 256),
        (Int8Recipe("Percentile", 99.999, ("Conv",), ("block5_",)), 256),
        (Int8Recipe("Percentile", 99.999, ("Conv",), ("block1_conv1", "block5_conv3")), 256),
        (Int8Recipe(op_types=("Conv",), keep_float=("block1_conv1",)), 256),
    ]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = to_onnx(fixed_size_graph(model, size), Path(tmp) / "fp32.onnx")
        for recipe, count in recipes:
            calibration = load_images([train[i] for i in sorted(order[:count])], size)
            path = quantize_int8(
                fp32, Path(tmp) / f"{recipe.name}-{count}.onnx", calibration, recipe
            )
            runner = OnnxRunner(path, "onnx-int8")
            row = {"recipe": recipe.name, "calibration_photos": count}
            for name, photos in splits.items():
                row[f"{name}_agreement"] = top1_agreement(
                    reference[name], run_all(runner, photos), [0]
                )
            row["images_per_s"] = throughput(runner, splits["val"])
            log.info("%s", row)
            rows.append(row)
        row = {"recipe": "keras", "images_per_s": throughput(keras_runner, splits["val"])}
        rows.append(row)
    report = {"model": args.model, "image_size": size, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
