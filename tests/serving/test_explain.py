"""``POST /v1/explain``: the heatmap of why a brand, as PNG, through the real service."""

from __future__ import annotations

import io
from urllib.parse import unquote

import numpy as np
from PIL import Image

from baghunter.config import Settings
from baghunter.explain import explain
from baghunter.inference import BrandPredictor
from tests.serving.conftest import (
    CLASSES,
    COLOURS,
    Registry,
    Service,
    assert_error,
    colour_classifier,
    photo,
    running_service,
)


def _half_red(size: int = 96) -> np.ndarray:
    """Left half the red brand's colour, right half grey: the red half is the evidence."""
    image = np.full((size, size, 3), 128, np.uint8)
    image[:, : size // 2] = COLOURS["Red Brand"]
    return image


def _png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "PNG")
    return out.getvalue()


def test_the_heat_lies_where_the_brand_is() -> None:
    predictor = BrandPredictor(colour_classifier(), CLASSES)
    explained = explain(predictor, _half_red(), grid=4)
    assert explained.brand == "Red Brand"
    assert explained.heat.shape == (4, 4)
    assert 0 <= explained.heat.min() and explained.heat.max() == 1
    left, right = explained.heat[:, :2].mean(), explained.heat[:, 2:].mean()
    assert left > 0.5 and right < 0.1, explained.heat
    # Another brand's explanation: covering red *raises* it, so red is no evidence for it.
    green = explain(predictor, _half_red(), brand="Green Brand", grid=4)
    assert green.brand == "Green Brand" and green.heat[:, :2].mean() < left


def test_explain_returns_an_overlay_png_and_the_brand(service: Service) -> None:
    response = service.client.post(
        "/v1/explain", files={"file": ("half.png", _png(_half_red()), "image/png")}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert unquote(response.headers["x-explained-brand"]) == "Red Brand"
    assert 0.5 < float(response.headers["x-brand-probability"]) <= 1
    overlay = Image.open(io.BytesIO(response.content))
    assert overlay.format == "PNG" and overlay.size == (96, 96)
    pixels = np.asarray(overlay.convert("RGB"), np.float32)
    # The hot (left) half is lit, the cold half is dimmed below its grey.
    assert pixels[:, 60:].mean() < 128

    chosen = service.client.post(
        "/v1/explain?brand=Blue%20Brand", files={"file": ("half.png", _png(_half_red()))}
    )
    assert chosen.status_code == 200
    assert unquote(chosen.headers["x-explained-brand"]) == "Blue Brand"


def test_explain_bad_input(service: Service) -> None:
    client = service.client
    assert_error(client.post("/v1/explain"), 422, "missing_file")
    assert_error(
        client.post("/v1/explain", files={"file": ("x.png", b"not an image", "image/png")}),
        400,
        "undecodable_image",
    )
    assert_error(
        client.post("/v1/explain", content=b"{}", headers={"content-type": "application/json"}),
        415,
        "unsupported_media_type",
    )
    assert_error(
        client.post(
            "/v1/explain?brand=Nope", files={"file": ("r.png", photo(COLOURS["Red Brand"]))}
        ),
        422,
        "unknown_brand",
    )


def test_explain_follows_the_champion_after_a_hot_swap(
    registry_settings: Settings, model_registry: Registry
) -> None:
    old = model_registry.register("explain-colours")
    settings = registry_settings.model_copy(update={"model_name": "explain-colours"})
    with running_service(settings) as service:
        service.wait_ready(str(old.version))
        first = service.client.post("/v1/explain", files={"file": ("h.png", _png(_half_red()))})
        assert first.headers["x-model-version"] == str(old.version)

        new = model_registry.register("explain-colours", sharpness=9.0)
        service.wait_ready(str(new.version))
        second = service.client.post("/v1/explain", files={"file": ("h.png", _png(_half_red()))})
        assert second.status_code == 200
        assert second.headers["x-model-version"] == str(new.version)
        # The sharper model is surer of red: the explained probability rose.
        assert float(second.headers["x-brand-probability"]) > float(
            first.headers["x-brand-probability"]
        )
