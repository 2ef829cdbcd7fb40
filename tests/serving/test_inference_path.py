"""Serving, evaluation, ``baghunter predict`` and the audit answer through one inference path.

``BrandPredictor._run`` is the one place a brand model is run. It is wrapped (not
replaced: the real model still answers) to count the calls each entry point makes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from baghunter import evaluation, registry
from baghunter.audit import run as audit_run
from baghunter.inference import BrandPredictor
from tests.serving.conftest import COLOURS, Service, photo


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counted: list[int] = []
    real = BrandPredictor._run

    def counting(self: BrandPredictor, batch, batch_size, features=True):  # type: ignore[no-untyped-def]
        counted.append(len(batch))
        return real(self, batch, batch_size, features)

    monkeypatch.setattr(BrandPredictor, "_run", counting)
    return counted


def test_every_entry_point_runs_the_model_through_the_predictor(
    calls: list[int], service: Service, champion: registry.ModelRef, tmp_path: Path
) -> None:
    red = photo(COLOURS["Red Brand"])
    # The service (its model was loaded before the wrapper; the method is looked up per call).
    response = service.client.post("/v1/predict", files={"file": ("r.png", red, "image/png")})
    assert response.status_code == 200 and calls, response.text
    served = len(calls)

    # `baghunter predict` and `baghunter evaluate`.
    folder = tmp_path / "labelled" / "Red Brand"
    folder.mkdir(parents=True)
    (folder / "r.png").write_bytes(red)
    predicted = evaluation.predict_files(champion.uri, [folder / "r.png"])
    assert predicted[0]["brand"] == "Red Brand" and len(calls) > served
    before = len(calls)
    scored = evaluation.evaluate_folder(champion.uri, folder.parent)
    assert scored["accuracy"] == 1.0 and len(calls) > before

    # The listing audit loads the brand champion as a predictor and scores files with it.
    notes: list[str] = []
    predictor = audit_run._load_brand_model(champion.uri, "auto", notes)  # the default engine
    assert isinstance(predictor, BrandPredictor) and not notes
    before = len(calls)
    probs = predictor.file_probabilities([str(folder / "r.png")])
    assert probs.shape == (1, 3) and len(calls) > before
