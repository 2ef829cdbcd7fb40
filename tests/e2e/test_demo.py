"""``make demo``'s command on a clean data home, as a user runs it (a separate process).

CI has no ImageNet weights, so this is the from-scratch fallback path; a smaller catalog
keeps it to a few minutes. The second run must reuse what the first one built.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _demo(home: Path, port: int) -> dict:
    # A user's shell: none of the Airflow/Bag Hunter/MLflow settings earlier tests left in
    # this process (MLflow exports MLFLOW_TRACKING_URI when a tracking URI is set).
    prefixes = ("AIRFLOW", "BAGHUNTER_", "MLFLOW_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update({"BAGHUNTER_HOME": str(home), "BAGHUNTER_WEIGHTS": "none"})
    command = [
        sys.executable,
        "-m",
        "baghunter",
        "demo",
        "--brands",
        "3",
        "--per-brand",
        "20",
        "--port",
        str(port),
        "--json",
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_demo_runs_the_pipeline_and_reuses_it(tmp_path: Path) -> None:
    home, port = tmp_path / "home", _free_port()
    first = _demo(home, port)

    assert first["trained"] is True
    assert first["backbone"] == "scratch" and "baseline" in first["weights_note"]
    assert first["products"] == 3 * 20 + 3  # + re-listing and the two broken entries
    assert first["images"]["failed"] == 2
    reasons = sorted(first["failed_images"].values())
    assert reasons[0].startswith("http 404") and "truncated" in reasons[1]
    assert first["champion_version"] == 1
    # Far above chance (1/3) on the test split and on photos the catalog never had.
    assert first["test_accuracy"] >= 0.7
    assert first["holdout_accuracy"] >= 0.7
    assert (home / "airflow" / "airflow.db").exists()  # it really went through Airflow
    # Shared embeddings for every ok photo, an attribute champion, an audit that ran, and
    # a brand, attributes and a most similar listing for every unseen photo.
    embedded = first["embedded"]
    assert embedded["computed"] == embedded["images"] > 0
    assert embedded["images"] <= first["images"]["ok"]  # distinct photos, not URLs
    assert first["attribute_champion_version"] == 1
    assert set(first["attribute_metrics"]) <= {"category", "colour", "pattern"}
    assert first["attribute_metrics"]
    assert isinstance(first["audit"], dict)
    for prediction in first["predictions"]:
        assert set(prediction["attributes"]) == set(first["attribute_metrics"])
        assert prediction["most_similar"]["brand"] in {p["brand"] for p in first["predictions"]}

    second = _demo(home, port)
    assert second["trained"] is False  # the champion was trained on this very dataset
    assert second["champion_version"] == 1
    assert second["products"] == first["products"]
    assert second["images"] == first["images"]
    assert second["embedded"]["computed"] == 0  # no photo is embedded twice
    assert second["embedded"]["reused"] == first["embedded"]["computed"]
