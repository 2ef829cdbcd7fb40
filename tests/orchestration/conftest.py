"""Fixtures of the orchestration tier: the DAG files as Airflow parses them."""

from __future__ import annotations

import pytest

from tests.conftest import REPO

DAGS_DIR = REPO / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.models import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))
