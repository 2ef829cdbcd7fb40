"""The ``baghunter`` command: wiring from the command line to the package's stages.

Every command calls the same functions the Airflow tasks call; nothing here holds logic
beyond parsing options, opening the store and presenting results. One module per command
group; :mod:`.common` holds what they share. Commands are registered here, explicitly:
importing a module registers nothing.
"""

from __future__ import annotations

from typing import Annotated

import typer

from baghunter.cli import attributes, audit, catalog, config, features, local, models, similar
from baghunter.cli.common import configure_logging

app = typer.Typer(help="Bag Hunter: catalog → brand recognizer.", no_args_is_help=True)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    configure_logging(verbose)


app.add_typer(catalog.ingest_app, name="ingest")
app.add_typer(catalog.catalog_app, name="catalog")
app.add_typer(catalog.images_app, name="images")
app.add_typer(models.dataset_app, name="dataset")
app.command("train")(models.train)
app.command("train-step", hidden=True)(models.train_step)
app.command("evaluate")(models.evaluate)
app.command("predict")(models.predict)
app.command("serve")(models.serve)
app.command("embed")(features.embed)
app.add_typer(similar.similar_app, name="similar")
app.add_typer(attributes.attributes_app, name="attributes")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(local.sample_app, name="sample-catalog")
app.command("demo")(local.demo)
app.command("up")(local.up)
app.command("config")(config.show_config)

__all__ = ["app"]
