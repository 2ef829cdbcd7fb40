"""MLflow tracking, the model registry and the champion gate.

Everything the training pipeline and serving need from MLflow goes through this module, so
the rest of the code base never deals with tracking URIs, run bookkeeping or registry
aliases directly:

* :func:`tracking` / :func:`get_or_create_experiment` decide where runs and artifacts live;
* ``log_*`` helpers record a training run (params, per-epoch curves, the evaluation report,
  figures, and the dataset manifest as the run's input, for lineage);
* :func:`register_model` logs the Keras classifier and registers it as a new version;
* :func:`champion_gate` moves the ``champion`` alias only when a candidate beats the current
  champion on the same test set (MLflow stages are deprecated; aliases are the only pointer);
* :func:`load_classifier` / :func:`champion_info` are what serving uses.

MLflow and Keras are imported inside the functions: Airflow parses modules that import this
one, and importing MLflow (let alone TensorFlow) there would slow down every DAG parse.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from baghunter.config import Settings, get_settings
from baghunter.dataset.manifest import Manifest, ManifestEntry
from baghunter.training.metrics import EvalReport

if TYPE_CHECKING:
    import keras
    from matplotlib.figure import Figure
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

logger = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT = "model"  # name of the logged model inside its run

# Model-version tags: a searchable summary for people and for serving's status page. The
# loader does not read them (tags are mutable); it reads the model's own MLmodel metadata.
TAG_CLASSES = "classes"
TAG_DATASET_VERSION = "dataset_version"
TAG_GIT_COMMIT = "git_commit"
TAG_IMAGE_SIZE = "image_size"
TAG_DECISION = "promotion.decision"
TAG_REASON = "promotion.reason"

# MLflow rejects param values longer than this (mlflow.utils.validation.MAX_PARAM_VAL_LENGTH).
_MAX_PARAM_CHARS = 6000
# `models:/<name>@<alias>` and `models:/<name>/<version>`; any other URI (runs:/, a logged
# model id such as models:/m-..., a local path) is loaded without the registry.
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")

# Values this module exported to the environment itself (see `tracking`), per variable.
_exported_by_us: dict[str, str] = {}


class ModelNotFound(LookupError):
    """The registered model, version or alias a URI names does not exist."""


@dataclass(frozen=True)
class ModelRef:
    """A registered model version: what the gate promotes and serving loads."""

    name: str
    version: int
    uri: str  # models:/<name>/<version>, pinned (unlike an alias, it never moves)
    run_id: str


@dataclass
class LoadedModel:
    """A classifier ready to predict, with what is needed to read its output."""

    model: keras.Model
    classes: list[str]  # label of each output column, in order
    image_size: int
    name: str | None  # None when loaded from a run or a path rather than the registry
    version: int | None
    run_id: str | None
    metadata: dict[str, Any] = field(default_factory=dict)  # the MLmodel metadata


class GateReport(Protocol):
    """What the champion gate needs of a test-set report.

    :class:`~baghunter.training.metrics.EvalReport` (one classifier) and the attribute
    model's report (several heads) both satisfy it, so both go through the same gate.
    """

    def better_than(self, other: Any) -> bool:
        """The promotion rule: whether this report beats ``other`` (same test set)."""
        ...

    def headline_metrics(self) -> dict[str, float]:
        """Figures recorded with the decision (``candidate_<name>``, ``champion_<name>``)."""
        ...

    def label_space(self) -> tuple[str, Any]:
        """``(metadata key, value)`` the champion's model metadata must equal to be scored."""
        ...


@dataclass(frozen=True)
class PromotionDecision:
    promoted: bool
    reason: str
    candidate_version: int
    previous_champion_version: int | None
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None  # None when the champion was not scored

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        return str(experiment.experiment_id)
    location = None
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
        # sqlite:////abs/path has kept its leading slash; sqlite:///rel/path is relative.
        location = (database.parent / "artifacts").resolve().as_uri()
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException as exc:
        # Another process created it between our lookup and create (parallel DAG runs).
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        existing = client.get_experiment_by_name(name)
        if existing is None:
            raise
        return str(existing.experiment_id)


# --- recording a training run (inside an active run) ---------------------------------


def _active_run_id() -> str:
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

    _active_run_id()
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

    run_id = _active_run_id()
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

    _active_run_id()
    mlflow.log_metrics(report.flat_metrics(prefix))
    mlflow.log_dict(report.to_dict(), f"eval/{prefix}report.json")


def log_figure(figure: Figure, artifact_file: str) -> None:
    """Log a matplotlib figure, e.g. ``plots/confusion_matrix.png``.

    A wrapper so the plotting code needs no MLflow import; the caller owns (and closes) the
    figure.
    """
    import mlflow

    _active_run_id()
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

    _active_run_id()
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


# --- registering and loading models --------------------------------------------------


def register_model(
    model: keras.Model,
    *,
    run_id: str,
    classes: list[str],
    dataset_version: str,
    image_size: int,
    input_example: np.ndarray,
    name: str | None = None,
    extra_metadata: Mapping[str, Any] | None = None,
) -> ModelRef:
    """Log ``model`` to run ``run_id`` and register it as a new version of ``name``.

    The model takes raw uint8 images of any size (it resizes internally), so the signature
    is inferred from ``input_example`` (n, H, W, 3) with the image dimensions left free.
    ``classes``, ``image_size`` and ``dataset_version`` travel in the model's own MLmodel
    metadata, so the artifact alone is enough to use it (no registry, no tags needed), and
    are also set as version tags for browsing and search.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import Schema, TensorSpec

    name = name or get_settings().model_name
    example = np.asarray(input_example)
    if example.dtype != np.uint8 or example.ndim != 4 or example.shape[-1] != 3:
        raise ValueError(
            f"input_example must be uint8 (n, H, W, 3), got {example.dtype} {example.shape}"
        )
    probs = np.asarray(model.predict(example, verbose=0))
    if probs.shape != (example.shape[0], len(classes)):
        raise ValueError(f"model output {probs.shape} does not fit {len(classes)} classes")
    inferred = infer_signature(example, probs)
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))]),
        outputs=inferred.outputs,
    )
    metadata = {
        "classes": list(classes),
        "image_size": int(image_size),
        "dataset_version": dataset_version,
        **(extra_metadata or {}),
    }
    with _in_run(run_id):
        # No `input_example=`: mlflow.keras 3.x writes it before creating the model
        # directory and fails (mlflow/mlflow#16183); the signature carries the input schema.
        info = mlflow.keras.log_model(
            model,
            name=MODEL_ARTIFACT,
            registered_model_name=name,
            signature=signature,
            metadata=metadata,
            pip_requirements=_pip_requirements(),
        )
    version = info.registered_model_version
    if version is None:
        raise RuntimeError(f"MLflow did not register {name!r} for run {run_id}")
    client = MlflowClient()
    tags = {
        TAG_CLASSES: json.dumps(list(classes)),
        TAG_DATASET_VERSION: dataset_version,
        TAG_GIT_COMMIT: _git_commit(),
        TAG_IMAGE_SIZE: str(int(image_size)),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)
    ref = ModelRef(name=name, version=int(version), uri=f"models:/{name}/{version}", run_id=run_id)
    logger.info("registered %s (run %s, dataset %s)", ref.uri, run_id, dataset_version)
    return ref


@contextmanager
def _in_run(run_id: str) -> Iterator[None]:
    """Make ``run_id`` the active run: ``log_model`` only logs to the active run."""
    import mlflow

    active = mlflow.active_run()
    if active is not None:
        if active.info.run_id != run_id:
            raise RuntimeError(f"run {active.info.run_id} is active, not {run_id}")
        yield
        return
    with mlflow.start_run(run_id=run_id):
        yield


def _pip_requirements() -> list[str]:
    """Pinned Keras and its backend: what is needed to load the model elsewhere.

    Given explicitly because MLflow's inference of requirements loads the model in a
    subprocess (seconds) and would pick up everything the training environment imported.
    """
    from importlib import metadata

    import keras

    keras_requirement = f"keras=={keras.__version__}"
    backend_packages = {
        "tensorflow": ("tensorflow", "tensorflow-cpu"),
        "jax": ("jax",),
        "torch": ("torch",),
    }
    for package in backend_packages.get(keras.backend.backend(), ()):
        try:
            return [keras_requirement, f"{package}=={metadata.version(package)}"]
        except metadata.PackageNotFoundError:
            continue
    return [keras_requirement]


def _git_commit() -> str:
    """The commit of the code being run, or "unknown" outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and commit else "unknown"


def load_classifier(model_uri: str) -> LoadedModel:
    """Load a registered (or logged) classifier natively with its class list.

    ``models:/<name>@<alias>`` is first resolved to a version number, so the model, its
    metadata and the reported version are guaranteed to belong together even if the alias
    moves meanwhile. Raises :class:`ModelNotFound` for an unknown model, version or alias.
    """
    import mlflow
    from mlflow.models import Model

    model_uri, name, version, run_id = resolve_model_uri(model_uri)
    # Download once, then read both the metadata and the weights from the local copy.
    with tempfile.TemporaryDirectory(prefix="baghunter-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        descriptor = Model.load(local)
        meta = descriptor.metadata or {}
        if "classes" not in meta:
            raise ValueError(f"{model_uri} has no class list in its metadata; not a classifier")
        # Our models carry custom layers (VGG16's preprocessing); importing the module that
        # defines them registers them with Keras, so a fresh process (the serving app) can
        # deserialize the model.
        import baghunter.training.backbones  # noqa: F401

        model = mlflow.keras.load_model(local)
    return LoadedModel(
        model=model,
        classes=list(meta["classes"]),
        image_size=int(meta["image_size"]),
        name=name,
        version=version,
        run_id=run_id or descriptor.run_id,
        metadata=dict(meta),
    )


def resolve_model_uri(model_uri: str) -> tuple[str, str | None, int | None, str | None]:
    """``(pinned uri, name, version, run id)`` of a model URI.

    A registry URI (``models:/<name>@<alias>`` or ``/<version>``) is pinned to its version,
    so what is loaded next and the version reported for it belong together even if the
    alias moves meanwhile; any other URI is returned as is with no registry fields. Raises
    :class:`ModelNotFound` for an unknown model, version or alias.
    """
    from mlflow import MlflowClient

    match = _REGISTRY_URI.match(model_uri)
    if not match:
        return model_uri, None, None, None
    client = MlflowClient()
    name = match["name"]
    if match["alias"] is not None:
        version = _alias_version(client, name, match["alias"])
        if version is None:
            raise ModelNotFound(f"no version of {name!r} holds the alias {match['alias']!r}")
    else:
        version = int(match["version"])
    run_id = _model_version(client, name, version).run_id
    return f"models:/{name}/{version}", name, version, run_id


def _model_version(client: MlflowClient, name: str, version: int) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ModelNotFound(f"{name!r} has no version {version}") from exc
        raise


def _alias_version(client: MlflowClient, name: str, alias: str) -> int | None:
    """The version holding ``alias``, or None when the model or the alias does not exist.

    Read from the registered model's alias map rather than by catching the error of
    ``get_model_version_by_alias``, whose error code differs between stores.
    """
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = registered.aliases.get(alias)
    return None if version is None else int(version)


# --- the champion gate ---------------------------------------------------------------


def champion_gate(
    *,
    name: str,
    candidate: ModelRef,
    candidate_report: GateReport,
    score_champion: Callable[[str], GateReport],
    alias: str = CHAMPION_ALIAS,
) -> PromotionDecision:
    """Move ``alias`` to ``candidate`` only if it is better than the current holder.

    ``score_champion`` is given the champion's ``models:/<name>@<alias>`` URI and must score
    it on the same test set as ``candidate_report`` (the metrics logged when the champion
    was trained came from another test set and are not comparable). The rules:

    * no version holds the alias: promote;
    * the candidate already holds it: keep (re-running the gate is a no-op);
    * the champion's output columns mean other classes (other brands, another order, or
      none recorded): promote without scoring, since it cannot be scored on the candidate's
      labels and the catalog's current class set is the one serving must predict;
    * the champion cannot be scored (its metadata cannot be read or ``score_champion``
      raises, e.g. the model no longer loads): promote, logging why; a champion that
      cannot be loaded cannot serve either;
    * otherwise promote only if ``candidate_report.better_than(champion_report)``.

    The decision is recorded on the candidate's run (tags ``promotion.*``, metrics
    ``candidate_*``/``champion_*``) and as tags on the candidate's model version. Two gates
    running at once for the same model are not coordinated: schedule one at a time.
    """
    from mlflow import MlflowClient

    if candidate.name != name:
        raise ValueError(f"candidate {candidate.uri} is not a version of {name!r}")
    client = MlflowClient()
    champion = _alias_version(client, name, alias)
    champion_report: GateReport | None = None
    if champion is None:
        promoted, reason = True, f"no {alias} yet"
    elif champion == candidate.version:
        promoted, reason = False, f"candidate already holds the {alias} alias"
    else:
        promoted, reason, champion_report = _challenge(
            name, alias, champion, candidate_report, score_champion
        )
    if promoted:
        client.set_registered_model_alias(name, alias, str(candidate.version))
    decision = PromotionDecision(
        promoted=promoted,
        reason=reason,
        candidate_version=candidate.version,
        previous_champion_version=champion,
        candidate_metrics=_headline(candidate_report),
        champion_metrics=None if champion_report is None else _headline(champion_report),
    )
    _record_decision(client, candidate, decision)
    logger.info("%s v%s: %s (%s)", name, candidate.version, _verdict(promoted), reason)
    return decision


def _challenge(
    name: str,
    alias: str,
    champion: int,
    candidate_report: GateReport,
    score_champion: Callable[[str], GateReport],
) -> tuple[bool, str, GateReport | None]:
    """Candidate against a champion that exists: (promote?, why, the champion's report)."""
    try:
        # Checked first: a champion over other classes would be scored on wrong labels.
        key, labels = candidate_report.label_space()
        if _model_metadata(f"models:/{name}/{champion}", key) != labels:
            return True, f"{alias} predicts a different class set", None
        champion_report = score_champion(f"models:/{name}@{alias}")
    except Exception as exc:  # whatever the cause, the rule is the same: see champion_gate
        logger.warning("could not score %s v%s; promoting", name, champion, exc_info=True)
        return True, f"{alias} could not be scored: {_describe(exc)}", None
    promoted = candidate_report.better_than(champion_report)
    return (
        promoted,
        _comparison(candidate_report, champion_report, promoted, alias),
        champion_report,
    )


def _model_metadata(model_uri: str, key: str) -> Any:
    import mlflow

    metadata = mlflow.models.get_model_info(model_uri).metadata or {}
    return metadata.get(key)


def _comparison(candidate: GateReport, champion: GateReport, promoted: bool, alias: str) -> str:
    relation = "beats" if promoted else "does not beat"

    def figures(report: GateReport) -> str:
        return ", ".join(f"{k} {v:.4f}" for k, v in report.headline_metrics().items())

    return (
        f"candidate ({figures(candidate)}) {relation} {alias} ({figures(champion)}) "
        "on the same test set"
    )


def _headline(report: GateReport) -> dict[str, float]:
    return report.headline_metrics()


def _describe(exc: Exception) -> str:
    """A one-line account of a failure, short enough for an MLflow tag."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return text if len(text) <= 200 else text[:199] + "…"


def _verdict(promoted: bool) -> str:
    return "promoted" if promoted else "kept"


def _record_decision(
    client: MlflowClient, candidate: ModelRef, decision: PromotionDecision
) -> None:
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    values = {f"candidate_{k}": v for k, v in decision.candidate_metrics.items()}
    if decision.champion_metrics is not None:
        values |= {f"champion_{k}": v for k, v in decision.champion_metrics.items()}
    tags = {TAG_DECISION: _verdict(decision.promoted), TAG_REASON: decision.reason}
    client.log_batch(
        candidate.run_id,
        metrics=[Metric(key, value, now, 0) for key, value in values.items()],
        tags=[RunTag(key, value) for key, value in tags.items()],
    )
    for key, value in tags.items():
        client.set_model_version_tag(candidate.name, str(candidate.version), key, value)


def champion_info(name: str, alias: str = CHAMPION_ALIAS) -> dict[str, Any] | None:
    """What serving shows about the model it serves; None when there is no champion."""
    from mlflow import MlflowClient

    client = MlflowClient()
    version = _alias_version(client, name, alias)
    if version is None:
        return None
    model_version = client.get_model_version(name, str(version))
    run_id = model_version.run_id
    metrics: dict[str, float] = {}
    if run_id is not None:  # None for a version registered from a path instead of a run
        all_metrics = client.get_run(run_id).data.metrics
        metrics = {k: v for k, v in all_metrics.items() if k.startswith("test_")}
    return {
        "name": name,
        "alias": alias,
        "version": version,
        "uri": f"models:/{name}/{version}",
        "run_id": run_id,
        "created_at_ms": model_version.creation_timestamp,
        "tags": dict(model_version.tags),
        "metrics": metrics,
    }
