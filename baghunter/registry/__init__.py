"""MLflow tracking, the model registry and the champion gate.

Everything the training pipelines and serving need from MLflow goes through this package,
so the rest of the code base never deals with tracking URIs, run bookkeeping or registry
aliases directly. One module per job:

* :mod:`~baghunter.registry.tracking`: where runs live, and what a run records;
* :mod:`~baghunter.registry.models`: registering a classifier, resolving and loading one;
* :mod:`~baghunter.registry.gate`: the champion gate.

MLflow and Keras are imported inside the functions: Airflow parses modules that import this
package, and importing MLflow (let alone TensorFlow) there would slow down every DAG parse.
"""

from baghunter.registry.gate import (
    TAG_DECISION,
    TAG_REASON,
    GateReport,
    PromotionDecision,
    champion_gate,
)
from baghunter.registry.models import (
    CHAMPION_ALIAS,
    MODEL_ARTIFACT,
    TAG_CLASSES,
    TAG_GIT_COMMIT,
    TAG_IMAGE_SIZE,
    LoadedModel,
    ModelNotFound,
    ModelRef,
    UntrustedModelFormat,
    champion_info,
    git_commit,
    in_run,
    load_classifier,
    load_native_keras,
    pip_requirements,
    register_model,
    resolve_model_uri,
    version_tags,
)
from baghunter.registry.tracking import (
    TAG_DATASET_VERSION,
    active_run_id,
    get_or_create_experiment,
    log_eval_report,
    log_figure,
    log_history,
    log_manifest_input,
    log_params_flat,
    tracking,
)

__all__ = [
    "CHAMPION_ALIAS",
    "MODEL_ARTIFACT",
    "TAG_CLASSES",
    "TAG_DATASET_VERSION",
    "TAG_DECISION",
    "TAG_GIT_COMMIT",
    "TAG_IMAGE_SIZE",
    "TAG_REASON",
    "GateReport",
    "LoadedModel",
    "ModelNotFound",
    "ModelRef",
    "PromotionDecision",
    "UntrustedModelFormat",
    "active_run_id",
    "champion_gate",
    "champion_info",
    "get_or_create_experiment",
    "git_commit",
    "in_run",
    "load_classifier",
    "load_native_keras",
    "log_eval_report",
    "log_figure",
    "log_history",
    "log_manifest_input",
    "log_params_flat",
    "pip_requirements",
    "register_model",
    "resolve_model_uri",
    "tracking",
    "version_tags",
]
