"""What every command group shares: the consoles, option types, logging, store, output.

Imports nothing from the command groups, so any of them can import it.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from baghunter.config import Settings
from baghunter.store.base import CatalogStore, StoreUnavailable

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


def configure_logging(verbose: bool) -> None:
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
def store_or_exit(settings: Settings) -> Iterator[CatalogStore]:
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


def print_json(payload: Any) -> None:
    # Plain echo: rich would wrap long strings (URLs) at the terminal width.
    typer.echo(json.dumps(payload, indent=2, default=str))


def emit(payload: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        print_json(payload)
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
