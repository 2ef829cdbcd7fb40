"""``baghunter dataset``, ``train``, ``evaluate``, ``predict`` and ``serve``: the models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from baghunter.cli.common import (
    JsonFlag,
    emit,
    err,
    print_json,
    store_or_exit,
)
from baghunter.config import Settings, get_settings
from baghunter.dataset.curate import CurationConfig

# The CLI shows curation's own defaults (declared once, on CurationConfig).
TOP_BRANDS = cast(int, CurationConfig.brands)

dataset_app = typer.Typer(help="Curate training datasets from the store.", no_args_is_help=True)


Brands = Annotated[int, typer.Option("--brands", min=2, help="Top-K brands by usable images.")]
MinImages = Annotated[int, typer.Option(min=1, help="Distinct usable images a brand needs.")]
BrandList = Annotated[
    list[str] | None, typer.Option("--brand", help="Use these brands (repeatable) instead.")
]
MaxPerBrand = Annotated[int | None, typer.Option(min=1, help="Cap images per brand.")]
Categories = Annotated[
    list[str] | None, typer.Option("--category", help="Only these categories (repeatable).")
]
Seed = Annotated[int, typer.Option(help="Seed of the split (and of training).")]


def _curation(
    brands: int,
    min_images: int,
    brand: list[str] | None,
    max_per_brand: int | None,
    seed: int,
    category: list[str] | None = None,
) -> Any:
    return CurationConfig(
        brands=brands,
        min_images=min_images,
        include=tuple(brand or ()),
        max_per_brand=max_per_brand,
        seed=seed,
        categories=tuple(category or ()),
    )


def _build_manifest(settings: Settings, config: Any) -> Path:
    from baghunter.dataset.curate import CurationError, build_dataset

    with store_or_exit(settings) as store:
        try:
            return build_dataset(store, settings, config)
        except CurationError as exc:
            err.print(f"[red]cannot build the dataset:[/red] {exc}")
            raise typer.Exit(1) from exc


@dataset_app.command("build")
def dataset_build(
    brands: Brands = TOP_BRANDS,
    min_images: MinImages = CurationConfig.min_images,
    brand: BrandList = None,
    max_per_brand: MaxPerBrand = None,
    category: Categories = None,
    seed: Seed = CurationConfig.seed,
    as_json: JsonFlag = False,
) -> None:
    """Curate a leak-free train/val/test manifest from the store."""
    from baghunter.dataset.manifest import Manifest

    settings = get_settings()
    config = _curation(brands, min_images, brand, max_per_brand, seed, category)
    path = _build_manifest(settings, config)
    manifest = Manifest.load(path)
    payload = {
        "manifest": str(path),
        "version": manifest.version,
        "classes": manifest.classes,
        "counts": manifest.counts(),
    }
    emit(payload, as_json, "dataset")


def train(
    manifest: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Use this manifest.")
    ] = None,
    brands: Brands = TOP_BRANDS,
    min_images: MinImages = CurationConfig.min_images,
    brand: BrandList = None,
    max_per_brand: MaxPerBrand = None,
    category: Categories = None,
    backbone: Annotated[
        str | None, typer.Option(help="vgg16 (transfer learning, default) or scratch")
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="imagenet, none, or a .weights.h5 path [BAGHUNTER_WEIGHTS]")
    ] = None,
    image_size: Annotated[
        list[int] | None,
        typer.Option(
            min=32,
            max=512,
            help="Input size(s) to try (repeatable). Default: the shared embedding size and "
            "the catalog photos' own size.",
        ),
    ] = None,
    pool_depth: Annotated[
        list[int] | None,
        typer.Option(min=1, max=3, help="How many last conv blocks to pool (repeatable)."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1)] = None,
    epochs_frozen: Annotated[int | None, typer.Option(min=1, help="Head epochs")] = None,
    epochs_finetune: Annotated[int | None, typer.Option(min=0, help="0: no fine-tuning")] = None,
    learning_rate: float | None = None,
    finetune_learning_rate: float | None = None,
    patience: Annotated[int | None, typer.Option(min=1, help="Early-stopping patience")] = None,
    augment: Annotated[bool | None, typer.Option("--augment/--no-augment")] = None,
    open_set_accept: Annotated[
        float | None,
        typer.Option(min=0.5, max=0.99, help="Share of known photos the open-set gate answers"),
    ] = None,
    seed: Seed = CurationConfig.seed,
    as_json: JsonFlag = False,
) -> None:
    """Curate (unless --manifest), train, evaluate, register, and promote if better."""
    from baghunter.training import pipeline
    from baghunter.training.train import train_config

    settings = get_settings()
    if manifest is None:
        manifest = _build_manifest(
            settings, _curation(brands, min_images, brand, max_per_brand, seed, category)
        )
    config = train_config(
        {
            "backbone": backbone,
            "weights": weights,
            "image_sizes": tuple(image_size or ()),
            "pool_depths": tuple(pool_depth or ()),
            "batch_size": batch_size,
            "epochs_frozen": epochs_frozen,
            "epochs_finetune": epochs_finetune,
            "learning_rate": learning_rate,
            "finetune_learning_rate": finetune_learning_rate,
            "patience": patience,
            "augment": augment,
            "open_set_accept": open_set_accept,
            "seed": seed,
        },
        settings,
    )
    summary = pipeline.run_all(manifest, config, settings)
    emit(summary.to_dict(), as_json, "training")


def train_step(
    manifest: Annotated[Path, typer.Option(exists=True, dir_okay=False)],
    result_file: Annotated[Path, typer.Option(dir_okay=False, help="Where to write the run id")],
    config: Annotated[str, typer.Option(help="TrainConfig as JSON")] = "{}",
) -> None:
    """Only the training stage (Airflow runs it in a child process).

    The result goes to ``--result-file`` as JSON, never to stdout: the parent reads it
    from there, whatever the child or its libraries print.
    """
    from baghunter.native import import_tensorflow_quietly

    import_tensorflow_quietly()  # its output is relayed into the task log line by line
    from baghunter.training import pipeline
    from baghunter.training.backbones import WeightsUnavailable
    from baghunter.training.train import TrainConfig

    try:
        run_id = pipeline.train(manifest, TrainConfig.model_validate_json(config), get_settings())
    except (WeightsUnavailable, ValueError, FileNotFoundError) as exc:
        # A configuration problem: the parent fails the task without retrying it.
        result_file.write_text(json.dumps({"error": str(exc), "retryable": False}))
        raise typer.Exit(1) from exc
    except Exception as exc:
        result_file.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        raise
    result_file.write_text(json.dumps({"run_id": run_id}))


def evaluate(
    model: Annotated[str, typer.Option(help="models:/name@alias, models:/name/N or runs:/...")],
    data: Annotated[Path, typer.Option(exists=True, file_okay=False, help="FOLDER/<brand>/<img>")],
    as_json: JsonFlag = False,
) -> None:
    """Score a model on a labelled folder of photos."""
    from baghunter import registry
    from baghunter.evaluation import evaluate_folder

    registry.tracking(get_settings())
    try:
        result = evaluate_folder(model, data)
    except (registry.ModelNotFound, ValueError) as exc:
        err.print(f"[red]cannot evaluate:[/red] {exc}")
        raise typer.Exit(1) from exc
    emit(result, as_json, f"evaluation of {model}")


def predict(
    images: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False)],
    model: Annotated[str | None, typer.Option(help="Default: models:/<name>@champion")] = None,
    k: Annotated[int, typer.Option(min=1)] = 3,
) -> None:
    """Each photo's brand (null: none of the model's brands), top-k and open-set score."""
    from baghunter import registry
    from baghunter.evaluation import predict_files

    settings = get_settings()
    registry.tracking(settings)
    uri = model or f"models:/{settings.model_name}@{settings.model_alias}"
    try:
        results = predict_files(uri, images, k)
    except registry.ModelNotFound as exc:
        err.print(f"[red]no model:[/red] {exc}")
        raise typer.Exit(1) from exc
    print_json(results)


def serve(
    host: Annotated[str | None, typer.Option(help="[BAGHUNTER_SERVE_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="[BAGHUNTER_SERVE_PORT]")] = None,
) -> None:
    """Serve the champion model: upload page at /, JSON API under /v1."""
    from baghunter.serving.app import serve as run_server

    settings = get_settings()
    overrides = {k: v for k, v in {"serve_host": host, "serve_port": port}.items() if v}
    run_server(settings.model_copy(update=overrides))
