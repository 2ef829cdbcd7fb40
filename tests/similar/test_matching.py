"""Shopee-style product matching: the F1 metric and an evaluation of a generated CSV."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from baghunter.cli import app
from baghunter.config import Settings
from baghunter.local.sample.catalog import BRANDS, render_bag
from baghunter.similar.matching import mean_f1

from .copies import TRANSFORMS, transformed

runner = CliRunner()


def _f1_by_sets(truth: list[str], predicted: list[str]) -> float:
    """The competition's definition, literally: per posting, F1 of two sets of postings."""
    scores = []
    for i in range(len(truth)):
        true_set = {j for j, t in enumerate(truth) if t == truth[i]}
        predicted_set = {j for j, p in enumerate(predicted) if p == predicted[i]}
        scores.append(2 * len(true_set & predicted_set) / (len(true_set) + len(predicted_set)))
    return sum(scores) / len(scores)


def test_mean_f1_matches_the_set_definition() -> None:
    assert mean_f1(["a", "a", "b"], ["x", "x", "x"]) == pytest.approx((0.8 + 0.8 + 0.5) / 3)
    assert mean_f1(["a", "a", "b"], [1, 1, 2]) == 1.0
    rng = random.Random(0)
    for _ in range(20):
        truth = [rng.choice("abcdef") for _ in range(40)]
        predicted = [rng.choice("uvwxyz") for _ in range(40)]
        assert mean_f1(truth, predicted) == pytest.approx(_f1_by_sets(truth, predicted))
    with pytest.raises(ValueError, match="3 true labels but 2"):
        mean_f1(["a", "b", "c"], [1, 2])


def _shopee_csv(root: Path, products: int = 10) -> Path:
    """Postings of ``products`` products, each listed as one photo and its edited copies."""
    images = root / "images"
    images.mkdir(parents=True)
    rows = []
    for product in range(products):
        photo = render_bag(BRANDS[product % 3], seed=500 + product, size=96)
        versions = [photo] + [transformed(photo, kind, seed=product) for kind in TRANSFORMS[:3]]
        for n, jpeg in enumerate(versions[: 2 + product % 3]):
            name = f"{product}_{n}.jpg"
            (images / name).write_bytes(jpeg)
            rows.append(
                [f"post_{product}_{n}", name, "0" * 16, f"bag {product}", f"{1000 + product}"]
            )
    rows.append(["post_missing", "missing.jpg", "0" * 16, "gone", "9999"])
    path = root / "train.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["posting_id", "image", "image_phash", "title", "label_group"])
        writer.writerows(rows)
    return path


def test_evaluate_groups_scores_each_kind_of_evidence(
    scratch_settings: Settings, tmp_path: Path
) -> None:
    path = _shopee_csv(tmp_path)
    args = ["similar", "evaluate-groups", "--csv", str(path), "--images", str(tmp_path / "images")]
    result = runner.invoke(app, [*args, "--min-cosine", "0.9", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["postings"], report["scored"], report["skipped"]) == (30, 29, 1)
    assert report["label_groups"] == 10 and "missing.jpg" in report["problems"][0]
    modes = report["modes"]
    # Grouping copies beats leaving every posting alone; adding embeddings beats pHash alone.
    assert modes["phash"]["f1"] > report["singletons_f1"]
    assert modes["combined"]["f1"] > modes["phash"]["f1"]
    assert modes["combined"]["f1"] >= 0.8
    # Vectors come from the shared store the second time; the scores are the same.
    again = json.loads(runner.invoke(app, [*args, "--min-cosine", "0.9", "--json"]).stdout)
    assert {mode: scores["f1"] for mode, scores in again["modes"].items()} == {
        mode: scores["f1"] for mode, scores in modes.items()
    }


def test_evaluate_groups_refuses_other_csv_shapes(
    scratch_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "styles.csv"
    path.write_text("id,name\n1,bag\n")
    result = runner.invoke(
        app, ["similar", "evaluate-groups", "--csv", str(path), "--images", str(tmp_path)]
    )
    assert result.exit_code == 2 and "unknown CSV header" in " ".join(result.output.split())
