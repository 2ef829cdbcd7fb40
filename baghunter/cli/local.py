"""``baghunter demo``, ``up`` and ``sample-catalog``: the local harness's commands."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from baghunter.cli.common import (
    JsonFlag,
    err,
    out,
    print_json,
)
from baghunter.config import LOCAL_MLFLOW_PORT, get_settings

sample_app = typer.Typer(help="The generated sample catalog.", no_args_is_help=True)


@sample_app.command("serve")
def sample_serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port)")] = 8765,
    brands: Annotated[int, typer.Option(min=2, max=6)] = 4,
    per_brand: Annotated[int, typer.Option(min=3)] = 40,
    seed: int = 7,
) -> None:
    """Serve the generated sample catalog in the Farfetch-style listing format."""
    from baghunter.local.sample.catalog import SampleCatalog
    from baghunter.local.sample.server import RouteServer

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
    from baghunter.local.demo import print_summary, run_demo
    from baghunter.native import import_tensorflow_quietly

    import_tensorflow_quietly(get_settings().home / "logs" / "demo-tensorflow.log")
    from baghunter.local.sample.catalog import SampleCatalog

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
        print_json(result.to_dict())
    else:
        print_summary(result, settings, out)


def up(
    airflow_port: int = 8080,
    mlflow_port: int = LOCAL_MLFLOW_PORT,
    port: Annotated[int | None, typer.Option(help="Serving port [BAGHUNTER_SERVE_PORT]")] = None,
) -> None:
    """Airflow, the MLflow UI and the upload page on localhost; Ctrl-C stops them all."""
    from baghunter.local.stack import run_stack

    code = run_stack(
        get_settings(), airflow_port=airflow_port, mlflow_port=mlflow_port, serve_port=port
    )
    raise typer.Exit(code)
