"""
### Attribute training

Trains the product-attribute model (article type, colour, gender, usage, season... one
head each) on the shared image features, and promotes it only if it is better than the
model in production.

1. **build_dataset**: one row per distinct photo with the attribute values its listings
   agree on; values with fewer than `min_count` photos are left out; a leak-free split
   (near-duplicates and photos of one product never straddle splits); a versioned file.
2. **train**: a Keras multi-output head (masked loss: a missing value silences only its
   head) on the stored embeddings, logged to MLflow.
3. **evaluate**: per-attribute accuracy and macro-F1 against the majority-class baseline,
   confusion matrices, logged to the run.
4. **register**: embedder + heads as a new version of `product-attributes`
   (`BAGHUNTER_ATTRIBUTE_MODEL_NAME`), taking raw photos; vocabularies in its metadata.
5. **promote**: the current `champion` is scored on the same test set; the alias moves only
   if the new version is better (mean macro-F1, ties broken by mean accuracy).

Runs whenever `image_features` updates `baghunter://features`, and at least quarterly.
The train task goes where brand training's does (`BAGHUNTER_TRAIN_QUEUE`, `..._GPUS`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from baghunter.orchestration.assets import ATTRIBUTE_MODEL as MODEL
from baghunter.orchestration.assets import FEATURES
from baghunter.orchestration.placement import train_task_options


@dag(
    dag_id="attribute_training",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 4 1 */3 *", timezone="UTC"), assets=[FEATURES]
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["baghunter", "training", "attributes"],
    default_args={"owner": "baghunter", "retries": 1, "retry_delay": timedelta(minutes=5)},
    params={
        "attributes": Param([], type="array", description="Empty: BAGHUNTER_ATTRIBUTES"),
        "min_count": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Photos a value needs; empty: BAGHUNTER_ATTRIBUTE_MIN_COUNT",
        ),
        "backbone": Param("", type="string", description="Empty: BAGHUNTER_EMBED_BACKBONE"),
        "weights": Param("", type="string", description="Empty: BAGHUNTER_WEIGHTS"),
        "image_size": Param(None, type=["null", "integer"], minimum=32),
        # Empty: the head's own defaults (attributes/heads.py).
        "epochs": Param(None, type=["null", "integer"], minimum=1),
        "patience": Param(None, type=["null", "integer"], minimum=1, description="Early stopping"),
        "hidden": Param(None, type=["null", "integer"], minimum=1),
        "class_weight": Param(False, type="boolean"),
        "seed": Param(None, type=["null", "integer"], description="Seed of the split and training"),
    },
    doc_md=__doc__,
)
def attribute_training() -> None:
    @task
    def build_dataset(params: dict[str, Any] | None = None) -> str:
        from baghunter.config import get_settings
        from baghunter.orchestration import attributes

        return attributes.build_dataset(dict(params or {}), get_settings())

    @task(execution_timeout=timedelta(hours=6), **train_task_options())
    def train(dataset: str, params: dict[str, Any] | None = None, ti: Any = None) -> str:
        from baghunter.config import get_settings
        from baghunter.orchestration import attributes, training

        mlflow_run = attributes.train(dataset, dict(params or {}), get_settings())
        ti.xcom_push(key="mlflow_run_url", value=training.run_url(mlflow_run, get_settings()))
        return mlflow_run

    @task
    def evaluate(mlflow_run: str) -> dict[str, Any]:
        from baghunter.config import get_settings
        from baghunter.orchestration import attributes

        return attributes.evaluate(mlflow_run, get_settings())

    @task
    def register(mlflow_run: str) -> int:
        from baghunter.config import get_settings
        from baghunter.orchestration import attributes

        return attributes.register(mlflow_run, get_settings())

    @task(outlets=[MODEL])
    def promote(mlflow_run: str, version: int) -> dict[str, Any]:
        from baghunter.config import get_settings
        from baghunter.orchestration import attributes

        return attributes.promote(mlflow_run, version, get_settings())

    # XCom carries the MLflow run id ("run_id" itself is Airflow's own context key).
    mlflow_run = train(build_dataset())
    evaluated = evaluate(mlflow_run)
    version = register(mlflow_run)
    evaluated >> version
    promote(mlflow_run, version)


attribute_training()
