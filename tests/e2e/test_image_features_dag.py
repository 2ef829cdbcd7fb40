"""``image_features`` run for real with ``dag.test()`` over an ingested catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from baghunter.cli import app
from baghunter.config import Settings
from baghunter.embeddings.model import Embedder, EmbedderSpec
from baghunter.embeddings.pipeline import vector_store
from baghunter.local.sample.catalog import BRANDS, render_bag
from baghunter.similar.index import SimilarIndex, default_index_dir
from baghunter.store import open_store

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

CONF = {"backbone": "scratch", "image_size": 32}


@pytest.fixture
def features_dag(airflow_db):
    from airflow.models import DagBag

    from tests.conftest import REPO

    bag = DagBag(dag_folder=str(REPO / "dags" / "image_features.py"))
    assert bag.import_errors == {}
    return bag.dags["image_features"]


def _run(dag) -> dict:
    run = dag.test(run_conf=CONF)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    return {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in run.get_task_instances()}


def test_embeds_once_indexes_and_groups(features_dag, settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "catalog"
    for look in BRANDS[:2]:
        (folder / look.name).mkdir(parents=True)
        for i in range(5):
            (folder / look.name / f"{i}.jpg").write_bytes(render_bag(look, seed=i, size=48))
    # The same photo listed twice (another file name): one vector, one duplicate group.
    original = folder / BRANDS[0].name / "0.jpg"
    (folder / BRANDS[0].name / "copy.jpg").write_bytes(original.read_bytes())
    result = CliRunner().invoke(app, ["ingest", "folder", str(folder), "--json"])
    assert result.exit_code == 0, result.output

    first = _run(features_dag)
    embedded = first["embed_images"]
    assert (embedded["images"], embedded["computed"], embedded["reused"]) == (10, 10, 0)
    space = embedded["space"]
    assert space == Embedder(EmbedderSpec(backbone="scratch", weights="none", image_size=32)).space
    assert first["build_similar_index"] == space
    index = SimilarIndex.load(default_index_dir(settings, space))
    assert len(index) == 10
    assert first["group_duplicates"]["space"] == space
    # A random-init backbone's cosines mean nothing: only the perceptual hash links here.
    assert first["group_duplicates"]["embedding_links"] == 0
    assert first["group_duplicates"]["rules"]["min_cosine"] is None
    with open_store(settings) as store:
        assert store.duplicate_group_count() >= 1

    # A re-run over the unchanged catalog embeds nothing and changes no group.
    second = _run(features_dag)
    assert second["embed_images"]["computed"] == 0
    assert second["embed_images"]["reused"] == 10
    assert second["group_duplicates"]["changed"] == 0
    assert len(vector_store(settings, space)) == 10
    json.dumps(second)  # XComs stay small JSON values
