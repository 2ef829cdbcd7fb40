"""``baghunter ingest``, ``catalog`` and ``images``: reading catalogs into the store."""

from __future__ import annotations

import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from baghunter.catalog.specs import SourceSpec
from baghunter.cli.common import (
    Incremental,
    JsonFlag,
    MaxPages,
    Name,
    PageSize,
    SkipImages,
    emit,
    err,
    out,
    print_json,
    store_or_exit,
)
from baghunter.config import Settings, get_settings
from baghunter.store.base import CatalogStore

ingest_app = typer.Typer(
    help="Read a catalog into the store, then fetch and dedupe its images.", no_args_is_help=True
)
catalog_app = typer.Typer(help="Inspect the catalog store.", no_args_is_help=True)
images_app = typer.Typer(help="Image stages on their own.", no_args_is_help=True)


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
    with store_or_exit(settings) as store:
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
    emit(summary, as_json, f"ingest {spec.kind} {spec.location}")


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

    with store_or_exit(get_settings()) as store:
        stats = compute(store)
    if as_json:
        print_json(stats)
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
    with store_or_exit(settings) as store:
        report = _download_with_progress(store, settings)
    emit(report, as_json, "images")


@images_app.command("dedupe")
def images_dedupe(as_json: JsonFlag = False) -> None:
    """Recompute near-duplicate groups over the whole catalog."""
    from baghunter.images import sync

    settings = get_settings()
    with store_or_exit(settings) as store:
        report = asdict(sync.find_duplicates(store, settings))
    emit(report, as_json, "near-duplicates")
