"""``baghunter embed``: the shared visual features, from the command line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from baghunter.cli import JsonFlag, _emit, _store, app, err
from baghunter.config import get_settings


@app.command("embed")
def embed(
    backbone: Annotated[
        str | None, typer.Option(help="vgg16 or scratch [BAGHUNTER_EMBED_BACKBONE]")
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="imagenet, none, or a .weights.h5 path [BAGHUNTER_WEIGHTS]")
    ] = None,
    image_size: Annotated[
        int | None, typer.Option(min=32, help="Square input size [BAGHUNTER_EMBED_IMAGE_SIZE]")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Embed every ok catalog image that has no vector yet (a re-run embeds nothing)."""
    from baghunter.embeddings.model import EmbedderSpec
    from baghunter.embeddings.pipeline import embed_catalog

    settings = get_settings()
    spec = EmbedderSpec.resolve(settings, backbone=backbone, weights=weights, image_size=image_size)
    try:
        spec.validate()
    except (ValueError, FileNotFoundError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    columns = (TextColumn("embed"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with (
        _store(settings) as store,
        Progress(*columns, console=err, transient=not sys.stderr.isatty()) as progress,
    ):
        bar = progress.add_task("embed", total=None)

        def advanced(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        report = embed_catalog(store, settings, spec=spec, progress=advanced)
    _emit(report.to_dict(), as_json, "embeddings")
