"""
### Brand training

Trains the brand classifier from what the catalog holds, and promotes it only if it is
better than the model in production.

1. **build_dataset**: top-K brands by usable images (or an explicit list), a leak-free
   stratified split (near-duplicates and photos of one product never straddle splits), a
   versioned manifest.
2. **train** (a child process, logged to MLflow): every photo gets a vector in the shared
   embedding space (only missing ones are computed); a small sweep of heads on those
   vectors (input size, pooled blocks, head shape, L2) is scored on the validation
   split, each trial a nested MLflow run; the chosen Keras VGG16 model is fine-tuned end
   to end and kept only if validation improves; an open-set gate ("none of our brands")
   is fitted. The task's *MLflow run* link opens the run.
3. **evaluate**: accuracy, top-3, per-brand precision/recall/F1, confusion matrix and
   misclassified examples on the test split, and the open-set AUROC against catalog
   photos of other brands and other categories, logged to the run.
4. **register**: a new version of the registered model, with its classes and dataset version.
5. **promote**: the current `champion` is scored on the same test set; the alias moves
   only if the new version is better (accuracy, ties broken by macro-F1).

Runs whenever `catalog_ingest` updates `baghunter://catalog`, and at least quarterly.
`BAGHUNTER_TRAIN_QUEUE` sends the train task to GPU workers (`gpu` on Celery);
`BAGHUNTER_TRAIN_GPUS` / `BAGHUNTER_TRAIN_NODE_SELECTOR` place its pod on Kubernetes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from baghunter.orchestration.assets import BRAND_MODEL as MODEL
from baghunter.orchestration.assets import CATALOG
from baghunter.orchestration.placement import train_task_options


@dag(
    dag_id="brand_training",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 1 */3 *", timezone="UTC"), assets=[CATALOG]
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["baghunter", "training"],
    default_args={"owner": "baghunter", "retries": 1, "retry_delay": timedelta(minutes=5)},
    params={
        "brands": Param(5, type="integer", minimum=2, description="Top-K brands by usable images"),
        "min_images": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Distinct usable photos a brand needs; empty: the curation default",
        ),
        "include_brands": Param([], type="array", description="Explicit brands instead of top-K"),
        "categories": Param([], type="array", description="Only products of these categories"),
        "max_per_brand": Param(None, type=["null", "integer"], minimum=1),
        # Training options: empty means the setting or the trainer's own default.
        "backbone": Param(None, type=["null", "string"], enum=[None, "vgg16", "scratch"]),
        "weights": Param("", type="string", description="imagenet, none or a .weights.h5 path"),
        "image_size": Param(
            None,
            type=["null", "integer"],
            minimum=32,
            description="Pin the input size; empty: try the shared embedding size and the "
            "catalog photos' own size",
        ),
        "pool_depths": Param(
            None,
            type=["null", "array"],
            description="How many last conv blocks the sweep tries pooling, e.g. [1, 2, 3]",
        ),
        "epochs_frozen": Param(None, type=["null", "integer"], minimum=1),
        "epochs_finetune": Param(None, type=["null", "integer"], minimum=0),
        "batch_size": Param(None, type=["null", "integer"], minimum=1),
        "learning_rate": Param(None, type=["null", "number"], exclusiveMinimum=0),
        "finetune_learning_rate": Param(None, type=["null", "number"], exclusiveMinimum=0),
        "patience": Param(None, type=["null", "integer"], minimum=1),
        "open_set_accept": Param(None, type=["null", "number"], minimum=0.5, maximum=0.99),
        "seed": Param(None, type=["null", "integer"], description="Seed of the split and training"),
    },
    doc_md=__doc__,
)
def brand_training() -> None:
    @task
    def build_dataset(params: dict[str, Any] | None = None) -> str:
        from baghunter.config import get_settings
        from baghunter.orchestration import training

        return training.build_dataset(dict(params or {}), get_settings())

    @task(execution_timeout=timedelta(hours=12), **train_task_options())
    def train(manifest: str, params: dict[str, Any] | None = None, ti: Any = None) -> str:
        from baghunter.config import get_settings
        from baghunter.orchestration import training

        mlflow_run = training.train(manifest, dict(params or {}), get_settings())
        ti.xcom_push(key="mlflow_run_url", value=training.run_url(mlflow_run, get_settings()))
        return mlflow_run

    @task
    def evaluate(mlflow_run: str) -> dict[str, float]:
        from baghunter.config import get_settings
        from baghunter.orchestration import training

        return training.evaluate(mlflow_run, get_settings())

    @task
    def register(mlflow_run: str) -> int:
        from baghunter.config import get_settings
        from baghunter.orchestration import training

        return training.register(mlflow_run, get_settings())

    @task(outlets=[MODEL])
    def promote(mlflow_run: str, version: int) -> dict[str, Any]:
        from baghunter.config import get_settings
        from baghunter.orchestration import training

        return training.promote(mlflow_run, version, get_settings())

    # XCom carries the MLflow run id ("run_id" itself is Airflow's own context key).
    mlflow_run = train(build_dataset())
    evaluated = evaluate(mlflow_run)
    version = register(mlflow_run)
    evaluated >> version
    promote(mlflow_run, version)


brand_training()
