"""On the real Fashion Product Images catalog (skipped unless it is available).

A quick check that the whole path works on real photos and labels, on a slice of the
catalog: ingest, embed (scratch backbone: no weights file needed), train, and score the
held-out rows through ``evaluate_csv``. The accuracy figures of the full catalog with
VGG16 come from ``bench/attributes_bench.py``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from baghunter.cli import app
from baghunter.config import Settings

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
ROWS = 600


@pytest.fixture
def fashion_slice(tmp_path: Path) -> tuple[Path, Path]:
    folder = os.environ.get("BAGHUNTER_TEST_FASHION_DIR")
    if not folder or not (Path(folder) / "styles.csv").is_file():
        pytest.skip("set BAGHUNTER_TEST_FASHION_DIR to a folder holding styles.csv")
    root = Path(folder)
    images = next(p for p in (root / "images-60x80", root / "images") if p.is_dir())
    with (root / "styles.csv").open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [row for row in reader if len(row) == len(header)][:ROWS]
    target = tmp_path / "slice.csv"
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return target, images


def test_real_catalog_slice_trains_and_scores(
    settings: Settings, fashion_slice: tuple[Path, Path]
) -> None:
    from baghunter.attributes.csv_eval import evaluate_csv

    styles, images = fashion_slice
    runner = CliRunner()
    ingest = runner.invoke(app, ["ingest", "csv", str(styles), "--images", str(images)])
    assert ingest.exit_code == 0, ingest.output
    trained = runner.invoke(
        app,
        ["attributes", "train", "--backbone", "scratch", "--image-size", "32",
         "--attribute", "gender", "--attribute", "masterCategory", "--min-count", "10",
         "--epochs", "20"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    result = evaluate_csv(f"models:/{settings.attribute_model_name}@champion", styles, images)
    assert result["images"]["scored"] > ROWS * 0.9
    for name in ("gender", "masterCategory"):
        scores = result["attributes"][name]
        assert scores["n"] > 0 and scores["accuracy"] >= scores["majority_baseline"] - 0.05
