"""Where runs live and what a training run records in MLflow.

:func:`tracking` / :func:`get_or_create_experiment` decide where runs and artifacts live;
the ``log_*`` helpers record a run: params, per-epoch curves, the evaluation report,
figures, and the dataset manifest as the run's input, for lineage.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baghunter.config import Settings, get_settings
from baghunter.dataset.manifest import Manifest, ManifestEntry
from baghunter.training.metrics import EvalReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

# Tag of a run (and of a model version) naming the dataset version it was trained on.
TAG_DATASET_VERSION = "dataset_version"

# MLflow rejects param values longer than this (mlflow.utils.validation.MAX_PARAM_VAL_LENGTH).
_MAX_PARAM_CHARS = 6000

# Values this module exported to the environment itself (see `tracking`), per variable.
_exported_by_us: dict[str, str] = {}


# --- where runs live -----------------------------------------------------------------


def tracking(settings: Settings) -> str:
    """Point MLflow tracking and the registry at the configured store; return the URI.

    Rule: ``MLFLOW_TRACKING_URI`` (and ``MLFLOW_REGISTRY_URI``) set by the operator win,
    otherwise ``settings.tracking_uri`` is used and the registry lives in the same store.

    MLflow exports whatever URI is set to the environment so that child processes inherit
    it; that exported value must not later be mistaken for an operator override, or a second
    call with other settings in the same process (a test, a notebook) would silently keep
    the first store. So values this module exported itself are remembered and not counted.
    """
    import mlflow

    tracking_override = _operator_value("MLFLOW_TRACKING_URI")
    registry_override = _operator_value("MLFLOW_REGISTRY_URI")
    tracking_uri = tracking_override or settings.tracking_uri
    registry_uri = registry_override or tracking_uri
    if _is_default_store(tracking_uri, settings):
        # SQLite creates the database file but not its directory.
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    for variable, uri, override in (
        ("MLFLOW_TRACKING_URI", tracking_uri, tracking_override),
        ("MLFLOW_REGISTRY_URI", registry_uri, registry_override),
    ):
        if override:
            _exported_by_us.pop(variable, None)
        else:
            _exported_by_us[variable] = uri
    return tracking_uri


def _is_default_store(uri: str, settings: Settings) -> bool:
    """Whether ``uri`` is the SQLite store in the data home (nothing else configured)."""
    return settings.mlflow_tracking_uri is None and uri == settings.tracking_uri


def _operator_value(variable: str) -> str | None:
    value = os.environ.get(variable)
    if not value or value == _exported_by_us.get(variable):
        return None
    return value


# MLflow 3's UI opens an experiment on the page of its kind; without the tag it guesses,
# and an experiment of Keras runs opened on the GenAI "Traces" page.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"


def get_or_create_experiment(name: str, settings: Settings | None = None) -> str:
    """Configure tracking (see :func:`tracking`) and return the id of experiment ``name``.

    With a local SQLite store (the default one, or any ``sqlite:///`` URI), artifacts go
    in ``artifacts/`` next to the database file; left to itself MLflow would put them in
    ``./mlruns`` relative to whatever the working directory happens to be (the Airflow
    worker's, the CLI user's). A remote tracking server keeps its own artifact root.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    settings = settings or get_settings()
    uri = tracking(settings)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.tags.get(EXPERIMENT_KIND_TAG) is None:  # made before the tag existed
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
        return str(experiment.experiment_id)
    location = None
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
        # sqlite:////abs/path has kept its leading slash; sqlite:///rel/path is relative.
        location = (database.parent / "artifacts").resolve().as_uri()
    try:
        return str(
            client.create_experiment(
                name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: TRAINING_KIND}
            )
        )
    except MlflowException as exc:
        # Another process created it between our lookup and create (parallel DAG runs).
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        existing = client.get_experiment_by_name(name)
        if existing is None:
            raise
        return str(existing.experiment_id)


# --- recording a training run (inside an active run) ---------------------------------


def active_run_id() -> str:
    """The active run's id; MLflow's fluent API would silently start a new run instead."""
    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run: call this inside `mlflow.start_run()`")
    return str(run.info.run_id)


def log_params_flat(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Log nested params as ``a.b.c`` keys; return what was logged.

    Lists become JSON. Values over MLflow's length limit are truncated with a warning rather
    than failing a training run at the very end: the full value belongs in an artifact.
    """
    import mlflow

    active_run_id()
    flat = dict(_flatten(params, prefix))
    mlflow.log_params(flat)
    return flat


def _flatten(params: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{name}.")
            continue
        text = json.dumps(list(value)) if isinstance(value, list | tuple) else str(value)
        if len(text) > _MAX_PARAM_CHARS:
            logger.warning("param %s is %d chars long; truncated", name, len(text))
            text = text[: _MAX_PARAM_CHARS - 1] + "…"
        yield name, text


def log_history(history: Mapping[str, list[float]], start_step: int = 0) -> None:
    """Log per-epoch curves (Keras ``History.history``) with the epoch as the step.

    ``start_step`` lets a second training phase (fine-tuning) continue the curves of the
    first instead of overwriting its steps.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    run_id = active_run_id()
    now = int(time.time() * 1000)
    metrics = [
        Metric(key=key, value=float(value), timestamp=now, step=start_step + epoch)
        for key, values in history.items()
        for epoch, value in enumerate(values)
    ]
    # One batched call: a few hundred single-metric calls are slow on a SQLite store.
    MlflowClient().log_batch(run_id, metrics=metrics)


def log_eval_report(report: EvalReport, prefix: str = "test_") -> None:
    """Log the scalar metrics and the whole report as ``eval/<prefix>report.json``."""
    import mlflow

    active_run_id()
    mlflow.log_metrics(report.flat_metrics(prefix))
    mlflow.log_dict(report.to_dict(), f"eval/{prefix}report.json")


def log_figure(figure: Figure, artifact_file: str) -> None:
    """Log a matplotlib figure, e.g. ``plots/confusion_matrix.png``.

    A wrapper so the plotting code needs no MLflow import; the caller owns (and closes) the
    figure.
    """
    import mlflow

    active_run_id()
    mlflow.log_figure(figure, artifact_file)


def log_manifest_input(manifest: Manifest, source: str | Path, context: str = "training") -> None:
    """Record the dataset as the run's input: lineage from a model back to its images.

    The dataset digest is the manifest version (a content hash), so two runs on the same
    images show the same dataset in MLflow; ``source`` is where the manifest was read from.
    The manifest itself is attached as ``dataset/manifest.json`` and its version tagged as
    ``dataset_version`` for searching runs.
    """
    import mlflow
    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas

    active_run_id()
    version = manifest.version
    frame = pd.DataFrame(
        [asdict(entry) for entry in manifest.entries],
        columns=[f.name for f in fields(ManifestEntry)],
    )
    with warnings.catch_warnings():
        # MLflow registers its local-file source under two schemes and warns that a path is
        # ambiguous between them; both resolve to the same LocalArtifactDatasetSource.
        warnings.filterwarnings("ignore", message="The specified dataset source can be")
        dataset = from_pandas(
            frame, source=str(source), name=f"catalog-{version}", digest=version, targets="label"
        )
    mlflow.log_input(dataset, context=context)
    mlflow.log_dict(manifest.to_dict(), "dataset/manifest.json")
    mlflow.set_tag(TAG_DATASET_VERSION, version)
