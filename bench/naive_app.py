"""The serving baseline for ``serve_bench.py``: the original app's approach, nothing more.

One ``model.predict`` call per request, no batching: each upload is decoded with Pillow,
resized to the model's input and scored on its own, in whichever worker thread the
request landed (a synchronous endpoint, so requests run in the server's thread pool, as
in a threaded Flask app). It loads the same registered model as the service
(``models:/<model_name>@<model_alias>`` from the settings' MLflow store), so the two
servers differ only in how requests reach the model.

    BAGHUNTER_HOME=HOME python bench/naive_app.py --port 8001
"""

from __future__ import annotations

import argparse
import io
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, File, UploadFile
from PIL import Image

from baghunter import registry
from baghunter.config import Settings, get_settings

log = logging.getLogger("naive_app")


def create_naive_app(settings: Settings) -> FastAPI:
    """The baseline app; its model is loaded before the server accepts connections."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Registers VGG16's preprocessing layer, which the model needs to deserialize:
        # registry.load_classifier does not import it itself.
        from baghunter.training import backbones  # noqa: F401

        registry.tracking(settings)
        uri = f"models:/{settings.model_name}@{settings.model_alias}"
        state["loaded"] = registry.load_classifier(uri)
        log.info("serving %s", uri)
        yield

    app = FastAPI(title="naive baseline", lifespan=lifespan)

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/predict")
    def predict(file: UploadFile = File(...)) -> dict[str, Any]:  # noqa: B008 (FastAPI idiom)
        loaded = state["loaded"]
        image = Image.open(io.BytesIO(file.file.read())).convert("RGB")
        size = loaded.image_size
        pixels = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), np.uint8)
        probs = loaded.model.predict(pixels[np.newaxis], verbose=0)[0]
        order = np.argsort(-probs)[: settings.top_k]
        return {
            "predictions": [
                {"brand": loaded.classes[i], "probability": float(probs[i])} for i in order
            ]
        }

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    uvicorn.run(create_naive_app(get_settings()), host=args.host, port=args.port, access_log=False)


if __name__ == "__main__":
    main()
