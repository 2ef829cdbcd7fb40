"""DAG integrity and policy: every file imports cleanly and follows the project's rules."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pytest

from tests.orchestration.conftest import DAGS_DIR

pytestmark = pytest.mark.airflow

DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
# Module-level imports a DAG file may make: parsing must stay cheap and side-effect free,
# so the package (and tensorflow, mlflow...) is imported inside task bodies only; the one
# exceptions are the assets module, which imports Airflow's SDK alone, and the train
# tasks' placement, which reads the settings object (pydantic, no ML library).
SHARED_ASSETS = "baghunter.orchestration.assets"  # declared once, imported by the DAGs
PLACEMENT = "baghunter.orchestration.placement"
ALLOWED_TOP_LEVEL = {"__future__", "datetime", "os", "typing", "airflow"}


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_only_import_airflow_at_top_level(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = (
                [node.module]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
            )
            for name in names:
                assert name and (
                    name.split(".")[0] in ALLOWED_TOP_LEVEL or name in (SHARED_ASSETS, PLACEMENT)
                ), f"{path.name} imports {name} at module level"


def test_the_shared_assets_module_is_as_light_as_a_dag_file() -> None:
    # DAG files import it at parse time: it may import nothing heavier than Airflow's SDK.
    module = DAGS_DIR.parent / (SHARED_ASSETS.replace(".", "/") + ".py")
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            assert node.module in ("__future__", "airflow.sdk"), node.module
        assert not isinstance(node, ast.Import)


def test_each_asset_is_declared_once_and_produced_where_consumed(dagbag) -> None:
    from baghunter.orchestration import assets

    declared = {value.uri for value in vars(assets).values() if type(value).__name__ == "Asset"}
    produced = {
        outlet.uri for dag in dagbag.dags.values() for task in dag.tasks for outlet in task.outlets
    }
    assert produced == declared  # every asset has a producer, and no stray URI exists
    for path in DAG_FILES:
        assert "Asset(" not in path.read_text(), f"{path.name} declares an asset of its own"


def test_every_dag_follows_policy(dagbag) -> None:
    assert dagbag.dags, "no DAGs found"
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags and "baghunter" in dag.tags, dag_id
        assert dag.catchup is False, dag_id
        assert dag.doc_md and len(dag.doc_md) > 100, f"{dag_id} has no UI documentation"
        assert dag.schedule is not None, dag_id
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_catalog_ingest_shape(dagbag) -> None:
    dag = dagbag.dags["catalog_ingest"]
    assert {t.task_id for t in dag.tasks} == {
        "plan",
        "fetch",
        "upsert",
        "download_images",
        "find_duplicates",
    }
    assert dag.schedule == timedelta(days=14)  # bi-weekly, like the catalog's refresh
    outlets = dag.get_task("find_duplicates").outlets
    assert [a.uri.rstrip("/") for a in outlets] == ["baghunter://catalog"]


def test_training_task_links_to_its_mlflow_run(dagbag) -> None:
    """The plugin's global link reads the URL the training task pushes to XCom."""
    from airflow import plugins_manager

    links = {link.name: link for link in plugins_manager.get_global_operator_extra_links()}
    assert links["MLflow run"].xcom_key == "mlflow_run_url"
    # The API server works on the serialized DAG: that is where the link must appear.
    from airflow.serialization.serialized_objects import DagSerialization

    served = DagSerialization.deserialize_dag(
        DagSerialization.serialize_dag(dagbag.dags["brand_training"])
    )
    assert "MLflow run" in served.get_task("train").extra_links


def test_training_params_left_empty_use_the_codes_own_defaults(dagbag) -> None:
    # A number copied into a Param drifts from the default it copied: empty means "the
    # default", declared once on the config the task builds.
    empty = {
        "brand_training": ("min_images", "seed", "epochs_frozen", "epochs_finetune", "patience"),
        "attribute_training": ("min_count", "seed", "epochs", "patience", "hidden"),
    }
    for dag_id, names in empty.items():
        params = dagbag.dags[dag_id].params
        for name in names:
            assert params[name] is None, f"{dag_id}.{name} copies a default: {params[name]}"


def test_an_attribute_run_with_empty_params_trains_the_default_head(monkeypatch) -> None:
    from baghunter.attributes.heads import HeadConfig
    from baghunter.config import Settings
    from baghunter.orchestration.attributes import train_config

    params = {"epochs": None, "patience": None, "hidden": None, "seed": None}
    assert train_config(params, Settings(_env_file=None)).head == HeadConfig()  # type: ignore[call-arg]
    chosen = train_config({**params, "epochs": 3, "seed": 7}, Settings(_env_file=None))  # type: ignore[call-arg]
    assert (chosen.head.epochs, chosen.head.seed, chosen.head.hidden) == (3, 7, HeadConfig.hidden)
