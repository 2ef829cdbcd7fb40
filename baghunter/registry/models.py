"""Registered models: logging and registering a classifier, resolving and loading one.

:func:`register_model` logs the Keras classifier to its run and registers it as a new
version, its classes and input size in the model's own metadata; :func:`load_classifier`
and :func:`champion_info` are what serving and evaluation use.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from baghunter.config import get_settings
from baghunter.registry.tracking import TAG_DATASET_VERSION

if TYPE_CHECKING:
    import keras
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

logger = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT = "model"  # name of the logged model inside its run

# Model-version tags: a searchable summary for people and for serving's status page. The
# loader does not read them (tags are mutable); it reads the model's own MLmodel metadata.
TAG_CLASSES = "classes"
TAG_GIT_COMMIT = "git_commit"
TAG_IMAGE_SIZE = "image_size"

# `models:/<name>@<alias>` and `models:/<name>/<version>`; any other URI (runs:/, a logged
# model id such as models:/m-..., a local path) is loaded without the registry.
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


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
    with in_run(run_id):
        # No `input_example=`: mlflow.keras 3.x writes it before creating the model
        # directory and fails (mlflow/mlflow#16183); the signature carries the input schema.
        info = mlflow.keras.log_model(
            model,
            name=MODEL_ARTIFACT,
            registered_model_name=name,
            signature=signature,
            metadata=metadata,
            pip_requirements=pip_requirements(),
        )
    version = info.registered_model_version
    if version is None:
        raise RuntimeError(f"MLflow did not register {name!r} for run {run_id}")
    client = MlflowClient()
    tags = {
        TAG_CLASSES: json.dumps(list(classes)),
        TAG_DATASET_VERSION: dataset_version,
        TAG_GIT_COMMIT: git_commit(),
        TAG_IMAGE_SIZE: str(int(image_size)),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)
    ref = ModelRef(name=name, version=int(version), uri=f"models:/{name}/{version}", run_id=run_id)
    logger.info("registered %s (run %s, dataset %s)", ref.uri, run_id, dataset_version)
    return ref


@contextmanager
def in_run(run_id: str) -> Iterator[None]:
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


def pip_requirements() -> list[str]:
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


def git_commit() -> str:
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


class UntrustedModelFormat(ValueError):
    """A registered model in a format serving does not load (see :func:`load_native_keras`)."""


def load_native_keras(local: str | Path, descriptor: Any) -> Any:
    """The Keras model of a downloaded MLflow model, from its native ``.keras`` file only.

    Registry write access should not be code execution on every replica. A native
    ``.keras`` file holds a config and weights, loaded here in Keras' safe mode (no
    deserialized Python lambdas); MLflow's other Keras flavour, an exported SavedModel,
    holds a TensorFlow graph whose ops can read and write files when it runs. Bag Hunter
    registers only the former, so anything else in its registry is refused.
    """
    import keras

    flavor = (descriptor.flavors or {}).get("keras")
    if flavor is None:
        raise UntrustedModelFormat("not a Keras model: refused")
    if flavor.get("save_exported_model"):
        raise UntrustedModelFormat(
            "an exported SavedModel (its graph could run file operations): refused; "
            "register the native .keras format"
        )
    path = Path(local) / str(flavor.get("data", "data")) / "model.keras"
    if path.is_symlink() or not path.is_file():
        raise UntrustedModelFormat(
            f"no native model.keras file in the model: refused ({path.name})"
        )
    return keras.saving.load_model(path, safe_mode=True)


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

        model = load_native_keras(local, descriptor)
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
        version = alias_version(client, name, match["alias"])
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


def version_tags(name: str, version: int) -> dict[str, str]:
    """The tags of one registered model version."""
    from mlflow import MlflowClient

    return dict(_model_version(MlflowClient(), name, version).tags)


def alias_version(client: MlflowClient, name: str, alias: str) -> int | None:
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


def champion_info(name: str, alias: str = CHAMPION_ALIAS) -> dict[str, Any] | None:
    """What serving shows about the model it serves; None when there is no champion."""
    from mlflow import MlflowClient

    client = MlflowClient()
    version = alias_version(client, name, alias)
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
