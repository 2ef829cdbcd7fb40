"""Attribute prediction on a real styles.csv catalog: per-attribute accuracy vs baselines.

Ingests the catalog into a data home (or reuses one that holds it), embeds what has no
vector yet (VGG16, default 64 px), builds the attribute dataset, trains, evaluates,
registers and gates the model exactly as ``baghunter attributes train`` does, then writes
the held-out test rows to a styles-shaped CSV and scores them with the code path of
``baghunter attributes evaluate`` (raw photos through the exported model). Side by side in
one run: the majority-class baseline and a logistic-regression probe on the same vectors.

    python bench/attributes_bench.py --csv styles.csv --images images-60x80/ \
        --weights vgg16_notop.weights.h5 [--home .baghunter-bench] [--image-size 64]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ATTRIBUTES = ("articleType", "baseColour", "gender", "usage", "season")
TARGETS = {"articleType": 0.85, "baseColour": 0.6, "gender": 0.85}


def _ingest(csv_path: Path, images: Path, home: Path) -> None:
    from baghunter.config import Settings
    from baghunter.store import open_store

    settings = Settings(home=home, store="embedded")
    if settings.store_path.exists():
        with open_store(settings) as store:
            if store.count_products():
                print(f"reusing the store in {home} ({store.count_products()} listings)")
                return
    env = {**os.environ, "BAGHUNTER_HOME": str(home), "BAGHUNTER_STORE": "embedded"}
    command = [sys.executable, "-m", "baghunter", "ingest", "csv", str(csv_path)]
    subprocess.run([*command, "--images", str(images), "--json"], check=True, env=env)


def _probe(dataset: Any, space: str, settings: Any) -> dict[str, float]:
    """Logistic regression on the same vectors (train+val -> test): a linear reference."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from baghunter.attributes.pipeline import load_vectors

    fit_rows = dataset.split("train") + dataset.split("val")
    test_rows = dataset.split("test")
    scaler = StandardScaler().fit(load_vectors(fit_rows, space, settings))
    x_fit = scaler.transform(load_vectors(fit_rows, space, settings))
    x_test = scaler.transform(load_vectors(test_rows, space, settings))
    out = {}
    for name in dataset.attributes:
        fit = [i for i, r in enumerate(fit_rows) if name in r.labels]
        test = [i for i, r in enumerate(test_rows) if name in r.labels]
        model = LogisticRegression(max_iter=300, C=0.1).fit(
            x_fit[fit], [fit_rows[i].labels[name] for i in fit]
        )
        truth = np.array([test_rows[i].labels[name] for i in test])
        out[name] = float(np.mean(model.predict(x_test[test]) == truth))
    return out


def _test_csv(dataset: Any, csv_path: Path, store: Any, target: Path) -> int:
    """The original CSV rows of every product whose photo is in the test split."""
    test_shas = {r.sha256 for r in dataset.split("test")}
    ids = {row.source_id for row in store.iter_catalog_images() if row.sha256 in test_shas}
    written = 0
    with (
        csv_path.open(newline="", encoding="utf-8-sig") as source,
        target.open("w", newline="") as out,
    ):
        reader = csv.reader(source)
        writer = csv.writer(out)
        header = next(reader)
        writer.writerow(header)
        at = header.index("id")
        for row in reader:
            if len(row) > at and row[at].strip() in ids:
                writer.writerow(row)
                written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, required=True, help="styles.csv")
    parser.add_argument("--images", type=Path, required=True, help="folder of <id>.jpg")
    parser.add_argument("--weights", required=True, help="VGG16 notop .weights.h5 (or imagenet)")
    parser.add_argument("--home", type=Path, default=Path(".baghunter-bench-attributes"))
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--min-count", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--class-weight", action="store_true")
    parser.add_argument("--no-probe", action="store_true", help="skip the logistic probe")
    parser.add_argument("--out", type=Path, default=Path("bench/results/attributes.json"))
    args = parser.parse_args()

    home = args.home.resolve()
    os.environ["BAGHUNTER_HOME"] = str(home)
    os.environ["BAGHUNTER_STORE"] = "embedded"
    _ingest(args.csv, args.images, home)

    from baghunter.attributes.csv_eval import evaluate_csv
    from baghunter.attributes.dataset import AttributeDataset, DatasetConfig, build_dataset
    from baghunter.attributes.heads import HeadConfig
    from baghunter.attributes.pipeline import AttributeTrainConfig, run_all
    from baghunter.config import get_settings
    from baghunter.embeddings.model import Embedder, EmbedderSpec
    from baghunter.embeddings.pipeline import embed_catalog
    from baghunter.store import open_store

    settings = get_settings()
    spec = EmbedderSpec("vgg16", args.weights, args.image_size)
    embedder = Embedder(spec)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with open_store(settings) as store:
        embedded = embed_catalog(store, settings, embedder=embedder)
        timings["embed_s"] = time.perf_counter() - started
        print(f"embeddings: {embedded.computed} computed, {embedded.reused} reused")
        config = DatasetConfig(attributes=ATTRIBUTES, min_count=args.min_count)
        dataset_path = build_dataset(store, settings, config)
        dataset = AttributeDataset.load(dataset_path)
        test_csv = args.out.with_suffix(".test.csv")
        test_csv.parent.mkdir(parents=True, exist_ok=True)
        test_rows = _test_csv(dataset, args.csv, store, test_csv)

    started = time.perf_counter()
    head = HeadConfig(hidden=args.hidden, epochs=args.epochs, class_weight=args.class_weight)
    summary = run_all(
        dataset_path, AttributeTrainConfig(embedder=spec, head=head), settings, embedder=embedder
    )
    timings["train_evaluate_register_s"] = time.perf_counter() - started
    started = time.perf_counter()
    probe = {} if args.no_probe else _probe(dataset, embedder.space, settings)
    timings["probe_s"] = time.perf_counter() - started

    started = time.perf_counter()
    uri = f"models:/{settings.attribute_model_name}/{summary.model_version}"
    scored = evaluate_csv(uri, test_csv, args.images)
    timings["evaluate_csv_s"] = time.perf_counter() - started

    split_sizes = {s: len(dataset.split(s)) for s in ("train", "val", "test")}
    per_attribute: dict[str, dict[str, Any]] = defaultdict(dict)
    for name, scores in scored["attributes"].items():
        per_attribute[name] = {
            **scores,
            "vectors_accuracy": summary.test_metrics["attributes"][name]["accuracy"],
            "probe_accuracy": probe.get(name),
            "target": TARGETS.get(name),
            "classes": len(dataset.attributes[name]),
        }
    report = {
        "space": embedder.space,
        "image_size": args.image_size,
        "dataset": dataset.version,
        "splits": split_sizes,
        "test_csv_rows": test_rows,
        "images": scored["images"],
        "model": uri,
        "promoted": summary.promoted,
        "options": {k: getattr(args, k) for k in ("min_count", "epochs", "hidden",
                                                   "class_weight")},
        "timings": timings,
        "attributes": per_attribute,
    }  # fmt: skip
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\ntest split: {scored['images']['scored']} photos ({test_rows} CSV rows), "
          f"splits {split_sizes}")  # fmt: skip
    print("| attribute | classes | accuracy | macro-F1 | majority baseline | logistic probe "
          "| target |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, s in per_attribute.items():
        target = f">= {s['target']}" if s["target"] else "-"
        probe_text = f"{s['probe_accuracy']:.3f}" if s["probe_accuracy"] is not None else "-"
        print(f"| {name} | {s['classes']} | {s['accuracy']:.3f} | {s['macro_f1']:.3f} | "
              f"{s['majority_baseline']:.3f} | {probe_text} | {target} |")  # fmt: skip
    print(json.dumps(timings))


if __name__ == "__main__":
    main()
