"""Brand-training benchmark on a real catalog: feature caching on vs off, side by side, one run.

The dataset is the handbag and clutch photos of the four brands with the most usable
images, curated from the catalog store exactly as ``baghunter dataset build`` does. Every
variant then goes through the real pipeline (``pipeline.run_all``: train, evaluate on the
test split, register, promote) against one MLflow store in the benchmark's work directory,
and its figures are read back from the MLflow run, so they are the numbers a user sees.

Variants (``--variants``, comma-separated, run in this order):

* ``cached``: VGG16 transfer learning, phase 1 on cached backbone features (the default);
* ``uncached``: the same configuration with ``cache_features=False`` (the original
  approach: every phase-1 epoch runs the frozen backbone over every image again);
* ``scratch``: the small CNN trained from random weights, the baseline of the studies;
* ``cached224``: ``cached`` at 224 px, VGG16's native input size (slow on a CPU).

The catalog comes either from an existing data home (``--home``, read only: manifests, the
MLflow store and the feature cache are written to the work directory) or is ingested from a
Fashion Product Images export into a fresh home (``--styles`` and ``--images``).

    python bench/train_bench.py --weights VGG16_NOTOP.weights.h5 \
        (--home DATA_HOME | --styles STYLES.csv --images IMAGES_DIR) [--image-size 96]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from baghunter.config import Settings
from baghunter.dataset.curate import CurationConfig, curate
from baghunter.dataset.manifest import Manifest
from baghunter.store import open_store

log = logging.getLogger("train_bench")

VARIANTS = ("cached", "uncached", "scratch", "cached224")
DEFAULT_VARIANTS = "cached,uncached,scratch"


@dataclass(frozen=True)
class Hyper:
    """The knobs the benchmark exposes; everything else is ``TrainConfig``'s default."""

    image_size: int
    epochs_frozen: int
    epochs_finetune: int
    learning_rate: float
    finetune_learning_rate: float
    patience: int
    augment: bool
    seed: int


def catalog_settings(args: argparse.Namespace, workdir: Path) -> tuple[Settings, dict[str, Any]]:
    """Settings of the catalog to curate from, ingesting it first when asked to."""
    if args.home is not None:
        return Settings(home=args.home, store="embedded"), {"source": "existing data home"}
    settings = Settings(home=workdir / "catalog", store="embedded")
    return settings, ingest_catalog(args.styles, args.images, settings)


def ingest_catalog(styles: Path, images: Path, settings: Settings) -> dict[str, Any]:
    """The CLI's ``baghunter ingest csv STYLES --images DIR``, into ``settings.home``."""
    from baghunter.catalog import ingest
    from baghunter.catalog.specs import SourceSpec
    from baghunter.images import sync

    spec = SourceSpec(kind="csv", location=str(styles.resolve()), images_dir=str(images.resolve()))
    started = time.perf_counter()
    with open_store(settings) as store:
        fetched = ingest.fetch(spec, settings, store, batch_id="train-bench")
        upserted = ingest.upsert(fetched.batch_uri, settings, store)
        downloaded = sync.download_pending(store, settings)
        deduped = sync.find_duplicates(store, settings)
    report = {
        "source": "ingested for this run",
        "seconds": time.perf_counter() - started,
        "products": upserted.inserted,
        "images_ok": downloaded.ok,
        "images_failed": downloaded.failed,
        "duplicate_groups": deduped.groups,
    }
    log.info("ingested the catalog: %s", report)
    return report


def curate_manifest(catalog: Settings, workdir: Path) -> Path:
    """Top-4 handbag brands by usable images, saved in the work directory.

    ``curate`` rather than ``build_dataset``: the latter saves into the catalog's own data
    home, which the benchmark only reads. Entries hold absolute image paths, so the
    manifest works from anywhere.
    """
    config = CurationConfig(brands=4, categories=("Handbags", "Clutches"), min_images=20)
    with open_store(catalog) as store:
        manifest = curate(store, catalog, config)
    return manifest.save(workdir / "datasets" / f"{manifest.version}.json")


def train_configs(variants: list[str], hyper: Hyper, weights: Path) -> dict[str, Any]:
    """``TrainConfig`` per variant: ``cached`` and ``uncached`` differ only by the cache."""
    from baghunter.training.train import TrainConfig

    vgg = TrainConfig(
        backbone="vgg16",
        weights=str(weights),
        image_size=hyper.image_size,
        epochs_frozen=hyper.epochs_frozen,
        epochs_finetune=hyper.epochs_finetune,
        learning_rate=hyper.learning_rate,
        finetune_learning_rate=hyper.finetune_learning_rate,
        patience=hyper.patience,
        augment=hyper.augment,
        seed=hyper.seed,
        cache_features=True,
    )
    every = {
        "cached": vgg,
        "uncached": vgg.model_copy(update={"cache_features": False}),
        # As TrainConfig recommends for a random backbone: a short head warm-up, then the
        # whole network trains at a normal learning rate (nothing pretrained to protect).
        "scratch": TrainConfig(
            backbone="scratch",
            weights="none",
            image_size=hyper.image_size,
            epochs_frozen=2,
            epochs_finetune=20,
            finetune_learning_rate=1e-3,
            patience=5,
            augment=hyper.augment,
            seed=hyper.seed,
        ),
        "cached224": vgg.model_copy(update={"image_size": 224}),
    }
    return {name: every[name] for name in variants}


def run_variant(name: str, config: Any, manifest: Path, settings: Settings) -> dict[str, Any]:
    """Train one variant through ``pipeline.run_all`` and read its results back from MLflow."""
    import keras

    from baghunter.training import pipeline

    # A fresh Keras graph per variant, so the previous variant's models neither hold memory
    # nor slow down this one's tracing.
    keras.utils.clear_session(free_memory=True)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    summary = pipeline.run_all(manifest, config, settings)
    wall = time.perf_counter() - started
    result = {
        "variant": name,
        "config": config.model_dump(mode="json"),
        "run_id": summary.run_id,
        "model_version": summary.model_version,
        "promoted": summary.promoted,
        "pipeline_wall_s": wall,
        # The machine is shared: the 1-minute load average says how busy it was.
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        **read_run(summary.run_id),
    }
    log.info("%s done in %.0f s: %s", name, wall, json.dumps(headline(result)))
    return result


def read_run(run_id: str) -> dict[str, Any]:
    """What the run recorded: test report, phase timings, cache counters, kept val score."""
    import mlflow
    from mlflow import MlflowClient

    from baghunter.training.pipeline import REPORT

    client = MlflowClient()
    metrics = client.get_run(run_id).data.metrics
    report = mlflow.artifacts.load_dict(f"runs:/{run_id}/{REPORT}")
    timings = {k.removeprefix("timing_"): v for k, v in metrics.items() if k.startswith("timing_")}
    cache = {
        k.removeprefix("feature_cache_"): int(v)
        for k, v in metrics.items()
        if k.startswith("feature_cache_")
    }
    if cache.get("computed") and timings.get("feature_extraction_s"):
        timings["feature_extraction_images_per_s"] = (
            cache["computed"] / timings["feature_extraction_s"]
        )
    return {
        "test": {
            "accuracy": report["accuracy"],
            "macro_f1": report["macro_f1"],
            "top3_accuracy": report["top3_accuracy"],
            "n": report["n"],
            "per_brand": report["per_brand"],
            "classes": report["classes"],
            "confusion_matrix": report["confusion_matrix"],
        },
        "val_at_kept_epoch": kept_val_scores(client, run_id, timings),
        "timings": timings,
        "feature_cache": cache,
    }


def kept_val_scores(client: Any, run_id: str, timings: dict[str, float]) -> dict[str, float]:
    """Validation loss and accuracy of the epoch the model was kept at.

    Early stopping restores the epoch with the lowest validation loss of the last phase
    that ran; its validation accuracy is what configurations may be compared on (the test
    split is reserved for the final figures).
    """
    phase = "finetune" if timings.get("finetune_epochs") else "frozen"
    losses = client.get_metric_history(run_id, f"{phase}_val_loss")
    accuracies = {
        m.step: m.value for m in client.get_metric_history(run_id, f"{phase}_val_accuracy")
    }
    best = min(losses, key=lambda m: m.value)
    return {
        "phase": phase,
        "epoch": best.step + 1,
        "loss": best.value,
        "accuracy": accuracies[best.step],
    }


def headline(result: dict[str, Any]) -> dict[str, Any]:
    t = result["timings"]
    return {
        "test_accuracy": round(result["test"]["accuracy"], 4),
        "macro_f1": round(result["test"]["macro_f1"], 4),
        "top3": round(result["test"]["top3_accuracy"], 4),
        "val_accuracy": round(result["val_at_kept_epoch"]["accuracy"], 4),
        "train_s": round(t.get("total_s", 0.0), 1),
        "pipeline_s": round(result["pipeline_wall_s"], 1),
        "feature_cache": result["feature_cache"],
    }


def confusion_markdown(test: dict[str, Any]) -> str:
    """The confusion matrix as a markdown table: rows true brand, columns predicted."""
    classes = test["classes"]
    lines = [
        "| true \\ predicted | " + " | ".join(classes) + " |",
        "|---|" + "---:|" * len(classes),
    ]
    for name, row in zip(classes, test["confusion_matrix"], strict=True):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def phase_markdown(results: list[dict[str, Any]]) -> str:
    """Wall time and throughput of each training phase, one row per variant."""
    lines = [
        "| variant | feature extraction s (img/s) | phase 1 s (epochs, img/s) "
        "| phase 2 s (epochs, img/s) | train total s | pipeline s | cache computed/reused |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        t, cache = r["timings"], r["feature_cache"]
        extraction = "—"
        if "feature_extraction_s" in t:
            rate = t.get("feature_extraction_images_per_s")
            extraction = f"{t['feature_extraction_s']:.1f}" + (f" ({rate:.1f})" if rate else "")
        lines.append(
            f"| {r['variant']} | {extraction} | {_phase(t, 'frozen')} | {_phase(t, 'finetune')} "
            f"| {t['total_s']:.1f} | {r['pipeline_wall_s']:.1f} "
            f"| {cache.get('computed', 0)}/{cache.get('reused', 0)} |"
        )
    return "\n".join(lines)


def _phase(timings: dict[str, float], phase: str) -> str:
    if f"{phase}_s" not in timings:
        return "—"
    return (
        f"{timings[f'{phase}_s']:.1f} ({timings[f'{phase}_epochs']:.0f}, "
        f"{timings[f'{phase}_images_per_s']:.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--home", type=Path, help="Data home holding the ingested catalog.")
    source.add_argument("--styles", type=Path, help="styles.csv of a catalog to ingest first.")
    parser.add_argument("--images", type=Path, help="Folder of <id>.jpg (with --styles).")
    parser.add_argument("--weights", type=Path, required=True, help="VGG16 no-top .weights.h5")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"from {', '.join(VARIANTS)}")
    # Defaults: 96 px is close to the 60x80 photos' own resolution, and the epoch caps keep
    # the uncached variant (about a minute per phase-1 epoch on 2 cores) inside ~25 minutes.
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs-frozen", type=int, default=10, help="Early stopping may end it.")
    parser.add_argument("--epochs-finetune", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--finetune-learning-rate", type=float, default=1e-5)
    parser.add_argument("--patience", type=int, default=3, help="Early-stopping patience.")
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--workdir",
        type=Path,
        help="Keep MLflow and the feature cache here (default: a temporary directory); "
        "a reused one shows a retrain's warm cache.",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/train.json"))
    args = parser.parse_args()
    if args.styles is not None and args.images is None:
        parser.error("--styles needs --images")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {VARIANTS}")

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    hyper = Hyper(
        image_size=args.image_size,
        epochs_frozen=args.epochs_frozen,
        epochs_finetune=args.epochs_finetune,
        learning_rate=args.learning_rate,
        finetune_learning_rate=args.finetune_learning_rate,
        patience=args.patience,
        augment=args.augment,
        seed=args.seed,
    )
    configs = train_configs(variants, hyper, args.weights)
    with tempfile.TemporaryDirectory(prefix="baghunter-train-bench-") as tmp:
        workdir = (args.workdir or Path(tmp)).resolve()
        catalog, catalog_report = catalog_settings(args, workdir)
        manifest_path = curate_manifest(catalog, workdir)
        manifest = Manifest.load(manifest_path)
        log.info("dataset %s: %s", manifest.version, manifest.counts())
        # The benchmark's own home: one MLflow store and one feature cache for all variants.
        settings = Settings(home=workdir / "bench-home", store="embedded", mlflow_tracking_uri=None)
        results = [
            run_variant(name, config, manifest_path, settings) for name, config in configs.items()
        ]

    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "catalog": catalog_report,
        "dataset": {
            "version": manifest.version,
            "classes": manifest.classes,
            "counts": manifest.counts(),
        },
        "hyper": asdict(hyper),
        "variants": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for r in results:
        print(f"[{r['variant']}] " + json.dumps(headline(r)))
        print(confusion_markdown(r["test"]))
    print(phase_markdown(results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
