"""The ``baghunter`` command: wiring from the command line to the package's stages.

Every command calls the same functions the Airflow tasks call; nothing here holds logic
beyond parsing options, opening the store and presenting results.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from baghunter.catalog.specs import SourceSpec
from baghunter.config import LOCAL_MLFLOW_PORT, Settings, get_settings
from baghunter.store.base import CatalogStore, StoreUnavailable

app = typer.Typer(help="Bag Hunter: catalog → brand recognizer.", no_args_is_help=True)
ingest_app = typer.Typer(
    help="Read a catalog into the store, then fetch and dedupe its images.", no_args_is_help=True
)
catalog_app = typer.Typer(help="Inspect the catalog store.", no_args_is_help=True)
images_app = typer.Typer(help="Image stages on their own.", no_args_is_help=True)
dataset_app = typer.Typer(help="Curate training datasets from the store.", no_args_is_help=True)
sample_app = typer.Typer(help="The generated sample catalog.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
app.add_typer(catalog_app, name="catalog")
app.add_typer(images_app, name="images")
app.add_typer(dataset_app, name="dataset")
app.add_typer(sample_app, name="sample-catalog")

# Results go to stdout (so ``--json`` output can be piped); logs and progress to stderr.
out = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
MaxPages = Annotated[int | None, typer.Option(min=1, help="Read at most this many pages.")]
Incremental = Annotated[
    bool, typer.Option(help="Stop at the first page that holds nothing new or changed.")
]
Name = Annotated[str | None, typer.Option(help="Source name stored with each listing.")]
SkipImages = Annotated[bool, typer.Option(help="Only store listings; fetch images later.")]
PageSize = Annotated[int | None, typer.Option(min=1, help="Records to request per page.")]
# The shared embedding's model, for every command that embeds (embed, attributes, similar).
Backbone = Annotated[str | None, typer.Option(help="vgg16 or scratch [BAGHUNTER_EMBED_BACKBONE]")]
Weights = Annotated[
    str | None, typer.Option(help="imagenet, none, or a .weights.h5 path [BAGHUNTER_WEIGHTS]")
]
EmbedSize = Annotated[
    int | None, typer.Option(min=32, help="Square input size [BAGHUNTER_EMBED_IMAGE_SIZE]")
]


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (it may be swapped, e.g. in tests)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    # A terminal gets rich's layout; a pipe (an Airflow task log, CI) gets one plain line
    # per record, which rich would otherwise wrap at 80 columns.
    handler: logging.Handler
    if sys.stderr.isatty():
        handler = RichHandler(console=err, show_path=False, show_time=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        handlers=[handler],
        force=True,  # the command owns logging: results on stdout, everything else on stderr
    )
    # Third-party chatter (one line per HTTP request) drowns the pipeline's own log.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def _store(settings: Settings) -> Iterator[CatalogStore]:
    from baghunter.store import open_store

    try:
        store = open_store(settings)
    except StoreUnavailable as exc:
        err.print(f"[red]catalog store unavailable:[/red] {exc}")
        raise typer.Exit(2) from exc
    try:
        yield store
    finally:
        store.close()


def _print_json(payload: Any) -> None:
    # Plain echo: rich would wrap long strings (URLs) at the terminal width.
    typer.echo(json.dumps(payload, indent=2, default=str))


def _emit(payload: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        _print_json(payload)
        return
    table = Table(title=title, show_header=False)
    for key, value in payload.items():
        table.add_row(
            key, json.dumps(value, default=str) if isinstance(value, dict) else str(value)
        )
    out.print(table)


def counting_progress(label: str) -> Progress:
    """A bar counting done/total on stderr (plain, and cleared, when stderr is a pipe)."""
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=err, transient=not sys.stderr.isatty())


def _download_with_progress(store: CatalogStore, settings: Settings) -> dict[str, Any]:
    from baghunter.images import sync

    columns = (
        TextColumn("images"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ok {task.fields[ok]} failed {task.fields[failed]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=not sys.stderr.isatty()) as progress:
        bar = progress.add_task("download", total=None, ok=0, failed=0)
        counts = {"ok": 0, "failed": 0}

        def started(total: int) -> None:
            progress.update(bar, total=total)

        def advanced(result: Any) -> None:
            counts["ok" if result.status == "ok" else "failed"] += 1
            progress.update(bar, advance=1, ok=counts["ok"], failed=counts["failed"])

        report = sync.download_pending(store, settings, on_start=started, on_result=advanced)
    return asdict(report)


def _ingest(spec: SourceSpec, skip_images: bool, as_json: bool) -> None:
    from baghunter.catalog import ingest
    from baghunter.catalog.sources import SourceError
    from baghunter.images import sync

    settings = get_settings()
    batch_id = "cli-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    summary: dict[str, Any] = {}
    with _store(settings) as store:
        try:
            fetched = ingest.fetch(spec, settings, store, batch_id)
            summary["fetch"] = asdict(fetched)
            summary["upsert"] = asdict(ingest.upsert(fetched.batch_uri, settings, store))
        except (SourceError, ingest.PartialFetchError) as exc:
            err.print(f"[red]could not read the whole catalog:[/red] {exc}")
            raise typer.Exit(1) from exc
        if not skip_images:
            try:
                summary["images"] = _download_with_progress(store, settings)
            except sync.LocalFault as exc:
                err.print(f"[red]stopped:[/red] {exc}")
                raise typer.Exit(1) from exc
            summary["duplicates"] = asdict(sync.find_duplicates(store, settings))
    _emit(summary, as_json, f"ingest {spec.kind} {spec.location}")


@ingest_app.command("shopify")
def ingest_shopify(
    url: Annotated[str, typer.Argument(help="Shop URL (its /products.json is read).")],
    max_pages: MaxPages = None,
    incremental: Incremental = False,
    name: Name = None,
    currency: Annotated[str | None, typer.Option(help="Currency of the shop's prices.")] = None,
    page_size: PageSize = None,
    skip_images: SkipImages = False,
    as_json: JsonFlag = False,
) -> None:
    """Shopify's public storefront feed (up to 250 products a page)."""
    spec = SourceSpec(
        kind="shopify",
        location=url,
        name=name,
        currency=currency,
        max_pages=max_pages,
        page_size=page_size,
        incremental=incremental,
    )
    _ingest(spec, skip_images, as_json)


@ingest_app.command("farfetch")
def ingest_farfetch(
    url: Annotated[str, typer.Argument(help="Listing API URL (page/pageSize are added).")],
    max_pages: MaxPages = None,
    incremental: Incremental = False,
    name: Name = None,
    page_size: PageSize = None,
    skip_images: SkipImages = False,
    as_json: JsonFlag = False,
) -> None:
    """A Farfetch-style JSON listing API with page/pageSize pagination."""
    spec = SourceSpec(
        kind="farfetch",
        location=url,
        name=name,
        max_pages=max_pages,
        page_size=page_size,
        incremental=incremental,
    )
    _ingest(spec, skip_images, as_json)


@ingest_app.command("folder")
def ingest_folder(
    path: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="PATH/<brand>/<image>")
    ],
    name: Name = None,
    skip_images: SkipImages = False,
    as_json: JsonFlag = False,
) -> None:
    """Images laid out one folder per brand."""
    spec = SourceSpec(kind="folder", location=str(path.resolve()), name=name)
    _ingest(spec, skip_images, as_json)


@ingest_app.command("csv")
def ingest_csv(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Manifest CSV.")],
    images: Annotated[
        Path, typer.Option(exists=True, file_okay=False, help="Folder holding the images.")
    ],
    name: Name = None,
    skip_images: SkipImages = False,
    as_json: JsonFlag = False,
) -> None:
    """A CSV manifest (Fashion Product Images styles.csv, or Shopee's posting_id/label_group)."""
    spec = SourceSpec(
        kind="csv", location=str(path.resolve()), images_dir=str(images.resolve()), name=name
    )
    _ingest(spec, skip_images, as_json)


@catalog_app.command("stats")
def catalog_stats(as_json: JsonFlag = False) -> None:
    """Products, image status, brands and near-duplicate groups."""
    from baghunter.catalog.stats import catalog_stats as compute

    with _store(get_settings()) as store:
        stats = compute(store)
    if as_json:
        _print_json(stats)
        return
    out.print(
        f"{stats['products']} products · images ok {stats['images']['ok']}, failed "
        f"{stats['images']['failed']}, pending {stats['images']['pending']} · "
        f"{stats['duplicate_groups']} duplicate groups · store: {stats['store']}"
    )
    table = Table("brand", "products", title="Top brands")
    for brand, count in list(stats["brands"].items())[:20]:
        table.add_row(brand, str(count))
    out.print(table)


@images_app.command("download")
def images_download(as_json: JsonFlag = False) -> None:
    """Fetch every pending image (and retry transient failures)."""
    settings = get_settings()
    with _store(settings) as store:
        report = _download_with_progress(store, settings)
    _emit(report, as_json, "images")


@images_app.command("dedupe")
def images_dedupe(as_json: JsonFlag = False) -> None:
    """Recompute near-duplicate groups over the whole catalog."""
    from baghunter.images import sync

    settings = get_settings()
    with _store(settings) as store:
        report = asdict(sync.find_duplicates(store, settings))
    _emit(report, as_json, "near-duplicates")


# --- datasets and training -------------------------------------------------------------

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
    from baghunter.dataset.curate import CurationConfig

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

    with _store(settings) as store:
        try:
            return build_dataset(store, settings, config)
        except CurationError as exc:
            err.print(f"[red]cannot build the dataset:[/red] {exc}")
            raise typer.Exit(1) from exc


@dataset_app.command("build")
def dataset_build(
    brands: Brands = 5,
    min_images: MinImages = 20,
    brand: BrandList = None,
    max_per_brand: MaxPerBrand = None,
    category: Categories = None,
    seed: Seed = 42,
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
    _emit(payload, as_json, "dataset")


@app.command("train")
def train(
    manifest: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Use this manifest.")
    ] = None,
    brands: Brands = 5,
    min_images: MinImages = 20,
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
    seed: Seed = 42,
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
    _emit(summary.to_dict(), as_json, "training")


@app.command("train-step", hidden=True)
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


@app.command("evaluate")
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
    _emit(result, as_json, f"evaluation of {model}")


@app.command("predict")
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
    _print_json(results)


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="[BAGHUNTER_SERVE_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="[BAGHUNTER_SERVE_PORT]")] = None,
) -> None:
    """Serve the champion model: upload page at /, JSON API under /v1."""
    from baghunter.serving.app import serve as run_server

    settings = get_settings()
    overrides = {k: v for k, v in {"serve_host": host, "serve_port": port}.items() if v}
    run_server(settings.model_copy(update=overrides))


@sample_app.command("serve")
def sample_serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port)")] = 8765,
    brands: Annotated[int, typer.Option(min=2, max=6)] = 4,
    per_brand: Annotated[int, typer.Option(min=3)] = 40,
    seed: int = 7,
) -> None:
    """Serve the generated sample catalog in the Farfetch-style listing format."""
    from baghunter.sample.catalog import SampleCatalog
    from baghunter.sample.server import RouteServer

    catalog = SampleCatalog(seed=seed, brands=brands, per_brand=per_brand)
    server = RouteServer(port=port)
    server.routes.update(catalog.routes(server.base_url))
    err.print(f"sample catalog: {server.url('/api/listings')}  (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@app.command("demo")
def demo(
    brands: Annotated[int, typer.Option(min=2, max=6, help="Fictional brands in the catalog")] = 4,
    per_brand: Annotated[int, typer.Option(min=10, help="Products per brand")] = 40,
    seed: int = 7,
    retrain: Annotated[bool, typer.Option(help="Train even if the champion is current.")] = False,
    port: Annotated[int, typer.Option(help="Port of the sample catalog on 127.0.0.1")] = 8765,
    holdout_per_brand: Annotated[
        int, typer.Option(min=1, max=50, help="Unseen photos per brand asked at the end")
    ] = 3,
    as_json: JsonFlag = False,
) -> None:
    """The whole pipeline on the sample catalog: ingest → train → promote → predict."""
    from baghunter.demo import print_summary, run_demo
    from baghunter.native import import_tensorflow_quietly

    import_tensorflow_quietly(get_settings().home / "logs" / "demo-tensorflow.log")
    from baghunter.sample.catalog import SampleCatalog

    settings = get_settings()
    catalog = SampleCatalog(seed=seed, brands=brands, per_brand=per_brand)
    import mlflow  # noqa: F401  (configures its loggers on import: quieted after it)

    # Start-up lines of the libraries, and this process's own copies of what the tasks
    # report, say nothing to a demo user: the console shows the steps and the tasks' lines.
    for noisy in ("mlflow", "alembic", "baghunter"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        result = run_demo(
            settings,
            catalog,
            err,
            port=port,
            retrain=retrain,
            holdout_per_brand=holdout_per_brand,
        )
    except (RuntimeError, FileNotFoundError, OSError) as exc:  # OSError: port taken
        err.print(f"[red]demo failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    if as_json:
        _print_json(result.to_dict())
    else:
        print_summary(result, settings, out)


@app.command("up")
def up(
    airflow_port: int = 8080,
    mlflow_port: int = LOCAL_MLFLOW_PORT,
    port: Annotated[int | None, typer.Option(help="Serving port [BAGHUNTER_SERVE_PORT]")] = None,
) -> None:
    """Airflow, the MLflow UI and the upload page on localhost; Ctrl-C stops them all."""
    from baghunter.stack import run_stack

    code = run_stack(
        get_settings(), airflow_port=airflow_port, mlflow_port=mlflow_port, serve_port=port
    )
    raise typer.Exit(code)


@app.command("config")
def show_config(
    remember: Annotated[
        list[str] | None,
        typer.Option(
            "--remember",
            metavar="NAME=VALUE",
            help="Make the data home remember a choice (weights, embed_backbone, "
            "embed_image_size, train_defaults, sources); VALUE may be JSON.",
        ),
    ] = None,
    forget: Annotated[
        list[str] | None, typer.Option("--forget", metavar="NAME", help="Forget a choice.")
    ] = None,
    as_json: JsonFlag = True,
) -> None:
    """Print the effective settings (the API key masked, no credentials in URIs).

    With --remember/--forget, first change what this data home remembers: runs, the
    service and the CLI on the home use it unless the environment says otherwise.
    """
    from baghunter.config import remember as remember_choices

    changes: dict[str, Any] = dict.fromkeys(forget or [])
    for item in remember or []:
        name, sep, text = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r}: expected NAME=VALUE", param_hint="--remember")
        try:
            changes[name.strip()] = json.loads(text)
        except ValueError:  # a bare path or word
            changes[name.strip()] = text
    if changes:
        try:
            path = remember_choices(get_settings().home, **changes)
        except ValueError as exc:  # pydantic's ValidationError included
            err.print(f"[red]cannot remember that:[/red] {exc}")
            raise typer.Exit(2) from exc
        err.print(f"remembered in {path}")
        get_settings.cache_clear()
    _emit(get_settings().redacted(), as_json, "settings")


# Command groups kept in their own modules register themselves on `app` when imported;
# they are imported last because they build on the helpers above.
from baghunter import cli_features  # noqa: E402,F401
from baghunter.cli_attributes import attributes_app  # noqa: E402
from baghunter.cli_audit import audit_app  # noqa: E402
from baghunter.cli_similar import similar_app  # noqa: E402

app.add_typer(similar_app, name="similar")
app.add_typer(attributes_app, name="attributes")
app.add_typer(audit_app, name="audit")

if __name__ == "__main__":
    app()
