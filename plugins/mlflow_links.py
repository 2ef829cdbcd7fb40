"""Airflow plugin: an "MLflow run" button on the task instances that trained a model.

The training task pushes its run's address to XCom under ``mlflow_run_url``. A global
extra link is resolved by the API server, which reads that XCom value for the task
instance shown; Airflow's ``XComOperatorLink`` does exactly that, so the button points at
the run of that very try and is empty on tasks that logged no run.
"""

from __future__ import annotations

from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin
from airflow.serialization.definitions.operatorlink import XComOperatorLink

MLFLOW_RUN_URL_KEY = "mlflow_run_url"


class BagHunterPlugin(AirflowPlugin):
    name = "baghunter"
    global_operator_extra_links: ClassVar[list[XComOperatorLink]] = [
        XComOperatorLink(name="MLflow run", xcom_key=MLFLOW_RUN_URL_KEY)
    ]
