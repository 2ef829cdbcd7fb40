"""``baghunter embed``: the shared visual features, from the command line."""

from __future__ import annotations

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
    store_or_exit,
)
from baghunter.config import get_settings


def embed(
    backbone: Backbone = None,
    weights: Weights = None,
    image_size: EmbedSize = None,
    ray: Annotated[bool, typer.Option("--ray", help="Compute the vectors on Ray Data.")] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="A Ray cluster's address (ray://head:10001, auto), or local: a Ray started "
            "on this machine for the run. Default with --ray: BAGHUNTER_EMBED_RAY_ADDRESS, "
            "else local.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Embed every ok catalog image that has no vector yet (a re-run embeds nothing)."""
    from baghunter.embeddings.model import EmbedderSpec
    from baghunter.embeddings.pipeline import embed_catalog
    from baghunter.embeddings.pipeline import ray_address as where

    settings = get_settings()
    spec = EmbedderSpec.resolve(settings, backbone=backbone, weights=weights, image_size=image_size)
    try:
        spec.validate()
    except (ValueError, FileNotFoundError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    with store_or_exit(settings) as store, counting_progress("embed") as progress:
        bar = progress.add_task("embed", total=None)

        def advanced(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        address = where(settings, ray, ray_address)
        report = embed_catalog(store, settings, spec=spec, progress=advanced, ray_address=address)
    emit(report.to_dict(), as_json, "embeddings")
