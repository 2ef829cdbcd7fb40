"""``baghunter config``: the settings in force, and the data home's remembered choices."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from baghunter.cli.common import (
    JsonFlag,
    emit,
    err,
)
from baghunter.config import get_settings


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
    emit(get_settings().redacted(), as_json, "settings")
