"""Brand recognition on real photos: the default training, its open-set answer, and baselines.

One run, one dataset (curated from a data home exactly as ``baghunter dataset build``
does), one MLflow store in the work directory. Every figure is read back from MLflow or
computed with the registered model through :class:`baghunter.inference.BrandPredictor`,
so they are the numbers a user sees.

Rows:

* ``defaults``: ``baghunter train`` at its defaults (shared embedding space, sweep on the
  validation split, fine-tuning kept only if validation improves, open-set gate);
* ``block5-224``: the old path's frozen phase - VGG16 at 224 px, only the last block
  pooled, its dense 256-128 head (``--no-block5`` skips it: embedding at 224 px is slow
  on a CPU);
* ``linear probe``: a logistic regression on the stored frozen vectors of the shared space,
  its C chosen on the validation split.

Open set: AUROC of the known brands' test photos against the dataset's photos of other
categories and of other brands' bags, for the gate's score and for the softmax's top
probability, with the share answered at the stored threshold.

    python bench/brand_bench.py --home DATA_HOME --weights vgg16_notop.weights.h5 \\
        --category Handbags --category Clutches --brands 4 --out bench/results/brand.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from baghunter.config import Settings

log = logging.getLogger("brand_bench")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--home", type=Path, required=True, help="data home with the catalog")
    parser.add_argument("--weights", required=True, help="VGG16 no-top weights (.weights.h5)")
    parser.add_argument("--category", action="append", default=[], help="repeatable")
    parser.add_argument("--brands", type=int, default=4)
    parser.add_argument("--min-images", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--no-block5", action="store_true", help="skip the 224 px baseline")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    return parser.parse_args()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("tensorflow", "absl", "h5py", "mlflow", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="brand-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        home=args.home,
        store="embedded",
        weights=str(Path(args.weights).resolve()),
        mlflow_tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}",
    )
    from baghunter.dataset.curate import CurationConfig, curate
    from baghunter.store import open_store

    with open_store(settings) as store:
        manifest = curate(
            store,
            settings,
            CurationConfig(
                brands=args.brands, min_images=args.min_images, categories=tuple(args.category)
            ),
        )
    manifest_path = manifest.save(workdir / f"{manifest.version}.json")
    counts = manifest.counts()
    results: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        "dataset": {
            "version": manifest.version,
            "classes": manifest.classes,
            "counts": {split: sum(c.values()) for split, c in counts.items()},
            "outside": {
                label: sum(e.label == label for e in manifest.outside)
                for label in {e.label for e in manifest.outside}
            },
        },
    }
    log.info("dataset %s", results["dataset"])

    results["defaults"] = train_row(manifest_path, {}, settings, "defaults")
    results["open_set"] = open_set_row(results["defaults"]["model_uri"], manifest)
    results["linear_probe"] = linear_probe(manifest, results["defaults"]["space"], settings)
    if not args.no_block5:
        block5 = {
            "image_size": 224,
            "pool_depths": (1,),
            "head_units": ((256, 128),),
            "l2": (0.0,),
            "epochs_finetune": 0,
        }
        results["block5_224"] = train_row(manifest_path, block5, settings, "block5-224")
    text = json.dumps(results, indent=2, default=str)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


def train_row(
    manifest_path: Path, options: dict[str, Any], settings: Settings, name: str
) -> dict[str, Any]:
    """``pipeline.run_all`` with these options; its figures as MLflow recorded them."""
    import mlflow

    from baghunter.training import pipeline
    from baghunter.training.train import train_config

    config = train_config(options, settings)
    log.info("%s: %s", name, config.model_dump(mode="json"))
    started = time.perf_counter()
    summary = pipeline.run_all(manifest_path, config, settings)
    wall = time.perf_counter() - started
    run = mlflow.get_run(summary.run_id)
    metrics, params = run.data.metrics, run.data.params
    return {
        "run_id": summary.run_id,
        "model_uri": f"models:/{settings.model_name}/{summary.model_version}",
        "wall_s": round(wall, 1),
        "test_accuracy": metrics.get("test_accuracy"),
        "test_macro_f1": metrics.get("test_macro_f1"),
        "test_top3_accuracy": metrics.get("test_top3_accuracy"),
        "val_accuracy": {
            k.removeprefix("val_accuracy_"): v
            for k, v in metrics.items()
            if k.startswith("val_accuracy_")
        },
        "finetune": run.data.tags.get("baghunter.finetune"),
        "chosen": {
            k.removeprefix("chosen."): v for k, v in params.items() if k.startswith("chosen.")
        },
        "space": params.get("chosen.space"),
        "timings": {
            k.removeprefix("timing_"): round(v, 1)
            for k, v in metrics.items()
            if k.startswith("timing_")
        },
        "open_set": {k.removeprefix("test_"): v for k, v in metrics.items() if "open_set" in k},
    }


def _prefixed(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)}


def open_set_row(model_uri: str, manifest: Any) -> dict[str, Any]:
    """Gate score vs softmax top probability as the "is it one of ours" score."""
    from baghunter.dataset.manifest import OTHER_BRAND, OTHER_CATEGORY
    from baghunter.inference import BrandPredictor
    from baghunter.training.open_set import auroc

    predictor = BrandPredictor.load(model_uri)
    known = predictor.predict_files([e.path for e in manifest.split("test")])
    row: dict[str, Any] = {
        "threshold": predictor.gate.threshold if predictor.gate else None,
        "variant": predictor.gate.variant.name() if predictor.gate else None,
        "known_answered": float(np.mean([a.known for a in known])),
    }
    # Thresholds letting other shares of the known *validation* photos through: the
    # trade-off a user sets with --open-set-accept, read on the test photos.
    val_scores = np.array(
        [
            a.open_set.score
            for a in predictor.predict_files([e.path for e in manifest.split("val")])
            if a.open_set
        ]
    )
    thresholds = {
        accept: float(np.quantile(val_scores, 1 - accept, method="lower"))
        for accept in (0.8, 0.85, 0.9, 0.95)
    }
    known_scores = np.array([a.open_set.score for a in known if a.open_set])
    row["by_accept"] = {
        str(accept): {"threshold": t, "known_answered": float(np.mean(known_scores >= t))}
        for accept, t in thresholds.items()
    }
    for label, key in ((OTHER_CATEGORY, "other_category"), (OTHER_BRAND, "other_brand")):
        paths = [e.path for e in manifest.outside if e.label == label and e.split == "test"]
        if not paths:
            continue
        outside = predictor.predict_files(paths)
        outside_scores = np.array([a.open_set.score for a in outside if a.open_set])
        for accept, t in thresholds.items():
            row["by_accept"][str(accept)][f"{key}_rejected"] = float(np.mean(outside_scores < t))
        gate_known = [a.open_set.score for a in known if a.open_set]
        gate_out = [a.open_set.score for a in outside if a.open_set]
        row[key] = {
            "count": len(outside),
            "rejected": float(np.mean([not a.known for a in outside])),
            "auroc_gate": auroc(np.array(gate_known), np.array(gate_out)),
            "auroc_max_softmax": auroc(
                np.array([a.probs.max() for a in known]),
                np.array([a.probs.max() for a in outside]),
            ),
        }
    return row


def linear_probe(manifest: Any, space: str, settings: Settings) -> dict[str, Any]:
    """Logistic regression on the stored vectors; C chosen on validation, test reported."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from baghunter.embeddings.model import Embedder
    from baghunter.embeddings.pipeline import embed_missing, vector_store

    store = vector_store(settings, space)
    # Training embedded train and val photos; the probe scores test photos too.
    embed_missing(
        Embedder.load(store.directory), settings, {e.sha256: e.path for e in manifest.entries}
    )

    def xy(split: str) -> tuple[np.ndarray, np.ndarray]:
        entries = manifest.split(split)
        _, x = store.load([e.sha256 for e in entries])
        return x, np.array([manifest.classes.index(e.label) for e in entries])

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = xy("train"), xy("val"), xy("test")
    scaler = StandardScaler().fit(x_train)
    best: tuple[float, float] | None = None
    for c in (0.001, 0.01, 0.1, 1.0):
        probe = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
        probe.fit(scaler.transform(x_train), y_train)
        score = probe.score(scaler.transform(x_val), y_val)
        if best is None or score > best[1]:
            best = (c, score)
    assert best is not None
    probe = LogisticRegression(C=best[0], max_iter=3000, class_weight="balanced")
    probe.fit(scaler.transform(x_train), y_train)
    return {
        "space": space,
        "C": best[0],
        "val_accuracy": best[1],
        "test_accuracy": float(probe.score(scaler.transform(x_test), y_test)),
    }


if __name__ == "__main__":
    main()
