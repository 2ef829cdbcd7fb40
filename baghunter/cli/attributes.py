"""``baghunter attributes``: train and score the attribute model from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from baghunter.cli.common import (
    Backbone,
    EmbedSize,
    JsonFlag,
    Weights,
    counting_progress,
    emit,
    err,
    print_json,
    store_or_exit,
)
from baghunter.config import get_settings, given

attributes_app: typer.Typer = typer.Typer(
    help="Predict product attributes (article type, colour, gender...) from photos.",
    no_args_is_help=True,
)


@attributes_app.command("train")
def train(
    backbone: Backbone = None,
    weights: Weights = None,
    image_size: EmbedSize = None,
    attribute: Annotated[
        list[str] | None,
        typer.Option(help="Attribute to learn (repeat) [default: BAGHUNTER_ATTRIBUTES]"),
    ] = None,
    min_count: Annotated[
        int | None,
        typer.Option(min=1, help="Images a value needs to be a class [default: the setting]"),
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="[default: the head's]")] = None,
    patience: Annotated[
        int | None, typer.Option(min=1, help="Early-stopping patience [default: the head's]")
    ] = None,
    hidden: Annotated[
        int | None, typer.Option(min=1, help="Units of the shared layer [default: the head's]")
    ] = None,
    class_weight: Annotated[bool, typer.Option(help="Inverse-frequency class weights")] = False,
    dataset: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Use this dataset file.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the split and training")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Dataset (unless --dataset), embed what is new, train, evaluate, register, promote."""
    from baghunter.attributes.dataset import DatasetConfig, DatasetError, build_dataset
    from baghunter.attributes.heads import HeadConfig
    from baghunter.attributes.pipeline import AttributeTrainConfig, run_all
    from baghunter.embeddings.model import Embedder, EmbedderSpec

    settings = get_settings()
    default = EmbedderSpec.from_settings(settings)
    chosen = backbone or default.backbone
    spec = EmbedderSpec(
        backbone=chosen,
        weights=weights or (default.weights if chosen == "vgg16" else "none"),
        image_size=image_size or default.image_size,
        engine=default.engine,
    )
    try:
        spec.validate()
    except (ValueError, FileNotFoundError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if dataset is None:
        config = DatasetConfig(
            attributes=tuple(attribute or settings.attributes),
            min_count=min_count or settings.attribute_min_count,
            **given(seed=seed),
        )
        with store_or_exit(settings) as store:
            try:
                dataset = build_dataset(store, settings, config)
            except DatasetError as exc:
                err.print(f"[red]{exc}[/red]")
                raise typer.Exit(2) from exc
        err.print(f"dataset {dataset}")
    head = HeadConfig(
        class_weight=class_weight,
        **given(hidden=hidden, epochs=epochs, patience=patience, seed=seed),
    )
    with counting_progress("embed") as progress:
        bar = progress.add_task("embed", total=None)

        def advanced(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        summary = run_all(
            dataset,
            AttributeTrainConfig(embedder=spec, head=head),
            settings,
            embedder=Embedder(spec),
            progress=advanced,
        )
    emit(summary.to_dict(), as_json, "attribute training")


@attributes_app.command("evaluate")
def evaluate(
    model: Annotated[str, typer.Option(help="Model URI, e.g. models:/product-attributes@champion")],
    csv_path: Annotated[
        Path, typer.Option("--csv", exists=True, dir_okay=False, help="styles.csv-shaped file")
    ],
    images: Annotated[
        Path, typer.Option(exists=True, file_okay=False, help="Folder of <id>.jpg photos")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Score the model on a catalog CSV: per-attribute accuracy, macro-F1, majority baseline."""
    from baghunter import registry
    from baghunter.attributes.csv_eval import CsvError, evaluate_csv

    registry.tracking(get_settings())
    with counting_progress("score") as progress:
        bar = progress.add_task("score", total=None)

        def advanced(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        try:
            result = evaluate_csv(model, csv_path, images, progress=advanced)
        except (CsvError, registry.ModelNotFound, ValueError) as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
    if as_json:
        print_json(result)
        return
    rows = {
        name: f"accuracy {s['accuracy']:.3f}  macro-F1 {s['macro_f1']:.3f}  "
        f"majority {s['majority_baseline']:.3f}  n {s['n']}  coverage {s['coverage']:.2f}"
        for name, s in result["attributes"].items()
    }
    emit({**rows, "images": result["images"]}, False, "attributes")
