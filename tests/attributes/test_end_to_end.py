"""Attribute training end to end on a generated styles.csv catalog.

Real Airflow (``dag.test()``), real Keras, real MLflow (SQLite registry under the test's
data home): catalog → dataset → embed → train → evaluate → register → champion gate, then
the loader API the audit and serving use, and ``attributes evaluate`` on a CSV with bad
rows. A from-scratch backbone on 32 px images keeps it quick on a CPU.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from baghunter import registry
from baghunter.cli import app
from baghunter.config import Settings
from baghunter.engines.checks import recorded_checks

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

runner = CliRunner()
SCRATCH = ["--backbone", "scratch", "--image-size", "32"]


def _cli(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    # dag.test() imports Airflow into this process, which prints warnings to stdout.
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line[:1] in "{[")
    return json.loads("\n".join(lines[start:]))


def _champion(settings: Settings) -> int:
    from mlflow import MlflowClient

    from baghunter import registry

    registry.tracking(settings)
    name = settings.attribute_model_name
    return int(MlflowClient().get_model_version_by_alias(name, "champion").version)


@pytest.fixture
def attribute_dag(airflow_db):
    from airflow.models import DagBag

    from tests.conftest import REPO

    bag = DagBag(dag_folder=str(REPO / "dags" / "attribute_training.py"))
    assert bag.import_errors == {}
    return bag.dags["attribute_training"]


def _bad_csv(styles: Path, images: Path, folder: Path) -> Path:
    """The catalog's first rows plus a missing photo, a corrupt one and an unknown colour."""
    with styles.open(newline="") as handle:
        rows = list(csv.DictReader(handle))[:40]
    fields = list(rows[0])
    folder.mkdir()
    for row in rows:
        (folder / f"{row['id']}.jpg").write_bytes((images / f"{row['id']}.jpg").read_bytes())
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    mauve = {**rows[0], "id": "mauve", "baseColour": "Mauve"}
    (folder / "mauve.jpg").write_bytes((images / f"{rows[0]['id']}.jpg").read_bytes())
    extra = [{**rows[1], "id": "missing"}, {**rows[2], "id": "corrupt"}, mauve]
    path = folder / "bad.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows([*rows, *extra])
    return path


def test_train_register_gate_load_and_score(
    settings: Settings, styles_catalog: tuple[Path, Path], attribute_dag, tmp_path: Path
) -> None:
    import tensorflow as tf

    from baghunter.attributes import pipeline
    from baghunter.attributes.model import load_attribute_model
    from baghunter.embeddings.pipeline import vector_store

    styles, images = styles_catalog
    _cli("ingest", "csv", str(styles), "--images", str(images), "--json")

    # 1. The DAG builds the dataset, trains, registers: the first version becomes champion.
    conf = {"backbone": "scratch", "image_size": 32, "min_count": 5, "epochs": 30,
            "hidden": 128}  # fmt: skip
    run = attribute_dag.test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert _champion(settings) == 1
    # Registration exported the version to both engines and checked them on validation.
    checks = recorded_checks(registry.version_tags(settings.attribute_model_name, 1))
    assert set(checks) == {"onnx", "onnx-int8"}
    assert checks["onnx"].passed, checks  # fp32: the same arithmetic, the same answers
    assert all(c.agreement is not None and 0 <= c.agreement <= 1 for c in checks.values())
    evaluated = next(ti for ti in run.get_task_instances() if ti.task_id == "evaluate")
    scores = evaluated.xcom_pull(task_ids="evaluate")["attributes"]
    assert set(scores) == {"articleType", "baseColour", "gender", "usage", "season"}
    # Colour and shape are in the picture: far above the majority class.
    assert scores["baseColour"]["accuracy"] > scores["baseColour"]["majority_baseline"] + 0.25
    assert scores["articleType"]["accuracy"] > scores["articleType"]["majority_baseline"] + 0.1
    first_run = evaluated.xcom_pull(task_ids="train")

    # 2. A barely trained candidate (CLI, same dataset) is registered but not promoted.
    dataset = next((settings.home / "datasets").glob("attributes-*.json"))
    worse = _cli("attributes", "train", *SCRATCH, "--dataset", str(dataset), "--epochs", "1",
                 "--hidden", "2", "--json")  # fmt: skip
    assert worse["model_version"] == 2 and worse["promoted"] is False
    assert "does not beat" in worse["decision"]
    # 3. The champion's own heads registered again score equal: equal is not better.
    again = pipeline.register(first_run, settings)
    assert pipeline.promote(first_run, again.version, settings).promoted is False
    assert _champion(settings) == 1

    # The loader API the audit and serving use.
    model = load_attribute_model(f"models:/{settings.attribute_model_name}@champion")
    assert (model.name, model.version, model.run_id) == ("product-attributes", 1, first_run)
    assert model.image_size == 32 and model.space.startswith("scratch-none-")
    assert model.attributes["baseColour"] == sorted(
        ["Black", "Brown", "Red", "Navy Blue", "Green", "Yellow"]
    )
    files = sorted(images.iterdir())[:5]
    # Decoded as the embedding pipeline decodes files (JPEG decoders differ slightly).
    photos = [tf.io.decode_image(p.read_bytes(), channels=3).numpy() for p in files]
    photos.append(np.full((70, 41, 3), 200, np.uint8))  # any size
    from_images = model.predict_images(photos)
    assert {k: v.shape[0] for k, v in from_images.items()} == dict.fromkeys(model.attributes, 6)
    np.testing.assert_allclose(from_images["gender"].sum(axis=1), 1.0, rtol=1e-5)
    # Stored vectors give the same answers as the photos themselves.
    shas = [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]
    _, vectors = vector_store(settings, model.space).load(shas)
    from_vectors = model.predict_features(vectors)
    for name in model.attributes:
        np.testing.assert_allclose(from_vectors[name], from_images[name][:5], atol=2e-3)
    with pytest.raises(ValueError, match="uint8"):
        model.predict_images([np.zeros((8, 8, 3), np.float32)])

    # 4. Scoring a CSV: bad rows are skipped and counted, never a crash.
    bad = _bad_csv(styles, images, tmp_path / "bad")
    uri = f"models:/{settings.attribute_model_name}@champion"
    result = _cli("attributes", "evaluate", "--model", uri, "--csv", str(bad), "--images",
                  str(bad.parent), "--json")  # fmt: skip
    assert result["rows"] == 43
    assert result["images"] == {"scored": 41, "missing": 1, "unreadable": 1}
    colour = result["attributes"]["baseColour"]
    assert colour["n"] == 40 and colour["out_of_vocabulary"] == 1
    assert colour["coverage"] == pytest.approx(40 / 41)
    assert 0.0 <= colour["majority_baseline"] <= 1.0
    assert colour["accuracy"] > colour["majority_baseline"]
    assert result["attributes"]["gender"]["n"] == 41
