"""The ``brand_training`` DAG's task bodies.

Training runs in a child process (``python -m baghunter train-step``): TensorFlow keeps the
GPU's memory until its process exits, and a worker process that lives on would hold it
away from the next task. The child streams its log into the task log and writes the MLflow
run id to a result file the parent names.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from baghunter.config import Settings, given
from baghunter.orchestration.failures import without_retries
from baghunter.orchestration.store import task_store

log = logging.getLogger(__name__)

TRAIN_PARAMS = (
    "backbone",
    "weights",
    "image_size",
    "pool_depths",
    "batch_size",
    "epochs_frozen",
    "epochs_finetune",
    "learning_rate",
    "finetune_learning_rate",
    "patience",
    "augment",
    "open_set_accept",
    "seed",
)


def build_dataset(params: dict[str, Any], settings: Settings) -> str:
    """Curate the manifest; returns its path."""
    from baghunter.dataset.curate import CurationConfig, CurationError, build_dataset

    # Options the run left empty keep CurationConfig's defaults (declared there once);
    # brands alone reads empty as "every brand that qualifies".
    config = CurationConfig(
        brands=params.get("brands") or None,
        include=tuple(params.get("include_brands") or ()),
        categories=tuple(params.get("categories") or ()),
        max_per_brand=params.get("max_per_brand") or None,
        **given(min_images=params.get("min_images"), seed=params.get("seed")),
    )
    with task_store(settings) as store, without_retries(CurationError):
        return str(build_dataset(store, settings, config))


def train_config_json(params: dict[str, Any], settings: Settings) -> str:
    """The run's training options as TrainConfig JSON (empty params: settings, defaults)."""
    from baghunter.training.train import train_config

    return train_config({k: params.get(k) for k in TRAIN_PARAMS}, settings).model_dump_json()


def train(manifest_path: str, params: dict[str, Any], settings: Settings) -> str:
    """Train in a child process; returns the MLflow run id (from the child's result file).

    What cannot work as configured (unknown options, missing weights, weights that cannot
    be downloaded here) fails the task at once with the reason: a retry would not help.
    """
    try:
        config = train_config_json(params, settings)
    except (ValueError, FileNotFoundError) as exc:  # pydantic's ValidationError included
        _cannot_run(str(exc), exc)
    with tempfile.TemporaryDirectory(prefix="baghunter-train-") as tmp:
        result_file = Path(tmp) / "result.json"
        command = [
            sys.executable,
            "-m",
            "baghunter",
            "train-step",
            "--manifest",
            manifest_path,
            "--result-file",
            str(result_file),
            "--config",
            config,
        ]
        log.info("training in a child process: %s", " ".join(command[:5]))
        # TensorFlow's C++ start-up chatter says nothing an operator can act on.
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        child = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env
        )
        assert child.stdout is not None
        tail: list[str] = []
        for line in child.stdout:  # stream progress into the task log as it happens
            line = line.rstrip()
            if line:
                log.info("%s", line)
                tail = [*tail[-4:], line]
        code = child.wait()
        result = json.loads(result_file.read_text()) if result_file.is_file() else {}
        if code == 0 and "run_id" in result:
            return str(result["run_id"])
        if "error" not in result:  # killed, or died before it could say why
            raise RuntimeError(
                f"training process exited with {code}; its last lines: " + " | ".join(tail)
            )
        if result.get("retryable", True):
            raise RuntimeError(f"training failed: {result['error']}")
        _cannot_run(result["error"])


def _cannot_run(reason: str, cause: BaseException | None = None) -> NoReturn:
    from airflow.exceptions import AirflowFailException

    raise AirflowFailException(f"training cannot run as configured: {reason}") from cause


def evaluate(run_id: str, settings: Settings) -> dict[str, float]:
    from baghunter.training import pipeline

    report = pipeline.evaluate(run_id, settings)
    return {"accuracy": report.accuracy, "macro_f1": report.macro_f1, "n": report.n}


def register(run_id: str, settings: Settings) -> int:
    from baghunter.training import pipeline

    return pipeline.register(run_id, settings).version


def promote(run_id: str, version: int, settings: Settings) -> dict[str, Any]:
    from baghunter.training import pipeline

    return pipeline.promote(run_id, version, settings).to_dict()


def run_url(run_id: str, settings: Settings) -> str:
    """The run's page in the MLflow UI (see ``Settings.mlflow_ui``)."""
    import mlflow

    from baghunter import registry

    registry.tracking(settings)
    experiment = mlflow.get_run(run_id).info.experiment_id
    return f"{settings.mlflow_ui}/#/experiments/{experiment}/runs/{run_id}"
