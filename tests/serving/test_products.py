"""Attributes, similar products and listing checks: the API and the upload page (Chromium).

A generated styles.csv catalog is ingested, embedded, indexed and used to train a real
attribute model (from-scratch backbone at 32 px, so it takes seconds); the service then
serves it next to the colour brand classifier of the shared registry. With
``BAGHUNTER_SCREENSHOT=1`` the page, showing every panel, is saved for the README.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from baghunter import registry
from baghunter.cli import app
from baghunter.config import Settings, get_settings
from baghunter.local.sample.styles import write_styles_catalog
from tests.conftest import REPO
from tests.serving.conftest import Service, assert_error, running_service

pytestmark = pytest.mark.slow

EMBED = {"BAGHUNTER_EMBED_BACKBONE": "scratch", "BAGHUNTER_EMBED_IMAGE_SIZE": "32"}


# The audit's plumbing is under test here, not the attribute model's quality: an attribute
# model on an untrained CNN's features is sure of a colour only now and then, so the
# service is given thresholds it can meet (the defaults are set on real photos:
# docs/benchmarks.md, "Listing audit").
AUDIT = {"audit_min_confidence": 0.25, "audit_max_claimed_probability": 0.1}


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line[:1] in "{[")
    return json.loads("\n".join(lines[start:]))


@pytest.fixture(scope="module")
def product_service(
    tmp_path_factory: pytest.TempPathFactory,
    registry_settings: Settings,
    champion: registry.ModelRef,
) -> Iterator[tuple[Service, Path, dict[str, str]]]:
    root = tmp_path_factory.mktemp("product-page")
    styles, images = write_styles_catalog(root / "catalog", 120, seed=3, image_size=48)
    env = {
        "BAGHUNTER_HOME": str(root / "home"),
        "BAGHUNTER_STORE": "embedded",
        "BAGHUNTER_WEIGHTS": "none",
        "BAGHUNTER_MLFLOW_TRACKING_URI": registry_settings.tracking_uri,
        **EMBED,
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        get_settings.cache_clear()
        _cli("ingest", "csv", str(styles), "--images", str(images), "--json")
        _cli("embed", "--json")
        _cli("similar", "build", "--json")
        trained = _cli("attributes", "train", "--min-count", "5", "--epochs", "40", "--json")
        get_settings.cache_clear()
    assert trained["promoted"], trained
    settings = registry_settings.model_copy(
        update={
            "home": root / "home",
            "mlflow_tracking_uri": registry_settings.tracking_uri,
            "embed_backbone": "scratch",
            "embed_image_size": 32,
            "weights": "none",
            **AUDIT,
        }
    )
    with styles.open(newline="") as handle:
        first = next(csv.DictReader(handle))
    photo_bytes = (images / f"{first['id']}.jpg").read_bytes()
    with running_service(settings) as service:
        service.wait_ready(str(champion.version))
        service.wait_until(
            lambda: (
                service.client.post(
                    "/v1/attributes", files={"file": ("p.jpg", photo_bytes, "image/jpeg")}
                ).status_code
                == 200
            ),
            60,
            "the attribute champion",
        )
        service.wait_until(
            lambda: (
                service.client.post(
                    "/v1/similar", files={"file": ("p.jpg", photo_bytes, "image/jpeg")}
                ).status_code
                == 200
            ),
            60,
            "the similar-product index",
        )
        yield service, images / f"{first['id']}.jpg", first


@pytest.mark.browser
def test_panels_show_attributes_similar_products_and_a_listing_check(
    page: Any,
    product_service: tuple[Service, Path, dict[str, str]],
) -> None:
    from playwright.sync_api import expect

    service, photo, _ = product_service
    page.goto(service.url + "/")
    page.set_input_files("#file", str(photo))

    # Attributes: one row per attribute the model learned, each with a value and a percent.
    expect(page.locator("#attributes dt").first).to_be_visible()
    names = page.locator("#attributes dt").all_inner_texts()
    assert "articleType" in names and "baseColour" in names, names
    values = page.locator("#attributes dd:not(.attr-percent)").all_inner_texts()
    assert all(value.strip() for value in values)

    # Similar products: the catalog's own photo comes back first, served as a thumbnail.
    expect(page.locator("#similar li")).to_have_count(8)
    first = page.locator("#similar li img").first
    expect(first).to_have_attribute("src", "/catalog/images/" + _sha256(photo))
    assert page.evaluate("(img) => img.naturalWidth", first.element_handle()) > 0
    expect(page.locator("#similar-status")).to_contain_text("of 120 catalog photos")

    # Listing check: the form asks for the brand and exactly the attributes the served
    # model reads; claiming what the photo shows agrees; an unknown brand is unscorable.
    expect(page.locator("#audit-fields input")).to_have_count(len(names))
    asked = page.locator("#audit-form input").evaluate_all("inputs => inputs.map(i => i.name)")
    assert sorted(asked) == sorted(["brand", *names]), asked
    claims = dict(zip(names, values, strict=True))
    page.fill("input[name=articleType]", claims["articleType"])
    page.fill("input[name=baseColour]", claims["baseColour"])
    page.fill("input[name=brand]", "No Such Brand")
    page.click("#audit-form button")
    expect(page.locator("#audit-result .verdict")).to_contain_text("agrees with the listing")
    expect(page.locator("#audit-result")).to_contain_text("Values no model knows: brand")
    # The brand panel has its answer: brands with the heatmap, or "none of our brands".
    expect(page.locator("#results li").first).to_be_visible()
    if os.environ.get("BAGHUNTER_SCREENSHOT") == "1":  # the README's picture of the page
        page.wait_for_timeout(1500)  # the bars' width transition, the heatmap's request
        page.screenshot(path=str(REPO / "docs" / "img" / "upload-page.png"), full_page=True)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _attributes(service: Service, photo: bytes) -> dict[str, list[dict[str, Any]]]:
    response = service.client.post(
        "/v1/attributes?k=100", files={"file": ("p.jpg", photo, "image/jpeg")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["name"] == "product-attributes"
    return body["attributes"]


def test_audit_flags_a_contradicted_claim_and_passes_a_true_one(
    product_service: tuple[Service, Path, dict[str, str]],
) -> None:
    service, photo, _ = product_service
    # A photo whose colour the model is sure of: claiming its least likely colour must be
    # a finding; claiming the predicted one must not.
    for candidate in sorted(photo.parent.glob("*.jpg"))[:40]:
        colours = _attributes(service, candidate.read_bytes())["baseColour"]
        if (
            colours[0]["probability"] >= AUDIT["audit_min_confidence"]
            and colours[-1]["probability"] <= AUDIT["audit_max_claimed_probability"]
        ):
            break
    else:
        pytest.fail("the attribute model is not confident on any catalog photo")
    data = candidate.read_bytes()
    wrong, right = colours[-1]["value"], colours[0]["value"]

    def audit(**claims: str) -> dict[str, Any]:
        response = service.client.post(
            "/v1/audit", files={"file": ("p.jpg", data, "image/jpeg")}, data=claims
        )
        assert response.status_code == 200, response.text
        return response.json()

    flagged = audit(baseColour=wrong, gender="Unisex-ish")
    assert not flagged["consistent"]
    assert [(f["field"], f["claimed"], f["predicted"]) for f in flagged["findings"]] == [
        ("baseColour", wrong, right)
    ]
    assert flagged["findings"][0]["confidence"] >= AUDIT["audit_min_confidence"]
    assert flagged["unscorable"] == ["gender"]  # a value the model has no class for
    assert flagged["models"] == {"product-attributes": "1"}

    clean = audit(baseColour=right.upper(), sleeve="long")  # claims match case-insensitively
    assert clean["consistent"] and clean["findings"] == []
    assert clean["scored"] == ["baseColour"] and clean["unchecked"] == ["sleeve"]


def test_the_attribute_model_says_what_a_listing_check_can_compare(
    product_service: tuple[Service, Path, dict[str, str]],
) -> None:
    service, photo, _ = product_service
    details = service.client.get("/v1/attributes").raise_for_status().json()
    predicted = _attributes(service, photo.read_bytes())
    assert set(details["attributes"]) == set(predicted)
    for name, values in details["attributes"].items():  # every value the model can answer
        assert {v["value"] for v in predicted[name]} <= set(values)
    assert details["version"] is not None and details["space"]


def test_audit_and_attributes_bad_input(
    product_service: tuple[Service, Path, dict[str, str]],
) -> None:
    service, photo, _ = product_service
    client = service.client
    data = photo.read_bytes()
    assert_error(client.post("/v1/audit", data={"brand": "Aurelia"}), 422, "missing_file")
    assert_error(
        client.post("/v1/audit", files={"file": ("p.jpg", data, "image/jpeg")}),
        422,
        "no_claims",
    )
    assert_error(
        client.post("/v1/audit", content=data, headers={"content-type": "image/jpeg"}),
        415,
        "unsupported_media_type",
    )
    assert_error(
        client.post(
            "/v1/audit",
            files={"file": ("x.jpg", b"<html>not a photo</html>", "image/jpeg")},
            data={"brand": "Aurelia"},
        ),
        415,
        "not_an_image",
    )
    too_many = {f"field{i}": "x" for i in range(40)}
    response = client.post(
        "/v1/audit", files={"file": ("p.jpg", data, "image/jpeg")}, data=too_many
    )
    assert_error(response, 400, "invalid_multipart")
    assert_error(client.post("/v1/attributes"), 422, "missing_file")
    assert_error(
        client.post("/v1/attributes", files={"file": ("e.jpg", b"", "image/jpeg")}),
        400,
        "empty_file",
    )
