"""HTTP endpoints: the ``/v1`` prediction API and the operational endpoints.

The upload endpoints read the request body themselves instead of declaring an
``UploadFile`` parameter: FastAPI would parse (and spool) the whole multipart body before
the endpoint runs, while reading it here lets the size limit cut an oversized upload off
as it arrives (see :mod:`baghunter.serving.images`). Their request bodies are documented in
the OpenAPI schema by hand for the same reason.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from baghunter.inference import BrandPrediction
from baghunter.serving.batching import BatcherStopped, MicroBatcher, PredictionFailed
from baghunter.serving.deps import (
    BatcherDep,
    HolderDep,
    MetricsDep,
    ServedModelDep,
    SettingsDep,
    no_model_error,
    require_api_key,
)
from baghunter.serving.errors import ApiError
from baghunter.serving.holder import ServedModel
from baghunter.serving.images import (
    Upload,
    UploadLimits,
    check_batch_pixels,
    decode_off_loop,
    read_batch_uploads,
    read_photo,
)
from baghunter.serving.schemas import (
    BatchItem,
    BatchResponse,
    ErrorBody,
    Health,
    ModelDetails,
    PredictResponse,
)

# Files per batch request: enough for a product page's gallery; larger jobs belong to an
# offline batch scorer, not to one HTTP request holding a connection open.
MAX_BATCH_FILES = 32

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Headers of /v1/explain's PNG: which brand the heatmap explains, and its probability.
EXPLAINED_BRAND_HEADER = "X-Explained-Brand"
EXPLAINED_PROBABILITY_HEADER = "X-Brand-Probability"

_BINARY = {"schema": {"type": "string", "format": "binary"}}
SINGLE_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "image/jpeg": _BINARY,
            "image/png": _BINARY,
            "image/webp": _BINARY,
        },
    }
}
_BATCH_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                }
            }
        },
    }
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 413, 415, 422, 500, 503)
}

TopK = Annotated[
    int | None,
    Query(ge=1, le=1000, description="How many brands to return (default: the server's)."),
]

api_router = APIRouter(prefix="/v1", tags=["brands"], dependencies=[Depends(require_api_key)])
ops_router = APIRouter(tags=["operations"])


@api_router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=SINGLE_UPLOAD_BODY,
    summary="Recognize the brand of one product photo",
)
async def predict(
    request: Request,
    served: ServedModelDep,
    batcher: BatcherDep,
    settings: SettingsDep,
    k: TopK = None,
) -> PredictResponse:
    started = time.perf_counter()
    image = await read_photo(request, UploadLimits.from_settings(settings))
    prediction = await score_in_batch(batcher, served, image)
    answer = served.answer(prediction, k or settings.top_k)
    return PredictResponse(
        **answer.model_dump(), model=served.summary, latency_ms=ms_since(started)
    )


@api_router.post(
    "/predict/batch",
    response_model=BatchResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=_BATCH_UPLOAD_BODY,
    summary="Recognize the brands of several photos (one result per file)",
)
async def predict_batch(
    request: Request,
    served: ServedModelDep,
    batcher: BatcherDep,
    settings: SettingsDep,
    k: TopK = None,
) -> BatchResponse:
    started = time.perf_counter()
    limits = UploadLimits.from_settings(settings)
    uploads = await read_batch_uploads(request, "files", max_files=MAX_BATCH_FILES, limits=limits)
    check_batch_pixels(uploads, settings.serve_batch_max_pixels)

    async def score_one(upload: Upload) -> BatchItem:
        # One bad file must not sink the others: its error becomes its own result.
        try:
            image = await decode_off_loop(upload, limits)
            prediction = await score_in_batch(batcher, served, image)
        except ApiError as exc:
            return BatchItem(filename=upload.filename, error=exc.body())
        answer = served.answer(prediction, k or settings.top_k)
        return BatchItem(filename=upload.filename, **answer.model_dump())

    # Submitted together, the images land in the same micro-batches.
    results = await asyncio.gather(*(score_one(upload) for upload in uploads))
    return BatchResponse(results=results, model=served.summary, latency_ms=ms_since(started))


@api_router.post(
    "/explain",
    response_class=Response,
    responses={
        200: {
            "content": {"image/png": {}},
            "description": "The photo with the heatmap laid over it. Headers: "
            f"{EXPLAINED_BRAND_HEADER} (URL-encoded) and {EXPLAINED_PROBABILITY_HEADER}.",
        },
        **ERROR_RESPONSES,
    },
    openapi_extra=SINGLE_UPLOAD_BODY,
    summary="Why this brand: a heatmap of the parts of the photo the answer rests on",
)
async def explain_photo(
    request: Request,
    served: ServedModelDep,
    settings: SettingsDep,
    brand: Annotated[
        str | None, Query(description="Explain this brand (default: the most probable).")
    ] = None,
) -> Response:
    from baghunter.explain import explain, overlay_png

    image = await read_photo(request, UploadLimits.from_settings(settings))
    if brand is not None and brand not in served.classes:
        raise ApiError(
            422, "unknown_brand", f"{brand!r} is not one of the model's brands: {served.classes}"
        )
    explained = await run_in_threadpool(explain, served.predictor, image, brand)
    png = await run_in_threadpool(overlay_png, image, explained.heat)
    return Response(
        content=png,
        media_type="image/png",
        headers={
            EXPLAINED_BRAND_HEADER: quote(explained.brand),
            EXPLAINED_PROBABILITY_HEADER: f"{explained.probability:.6f}",
            "X-Model-Version": served.version,
        },
    )


@api_router.get("/model", response_model=ModelDetails, responses=ERROR_RESPONSES)
async def model_details(served: ServedModelDep) -> ModelDetails:
    """The served model's version, classes, dataset version and test metrics."""
    return served.details


async def score_in_batch(
    batcher: MicroBatcher, served: ServedModel, image: np.ndarray
) -> BrandPrediction:
    try:
        return await batcher.predict(served, image)
    except PredictionFailed as exc:
        # The cause is logged by the batcher; clients get no internals.
        raise ApiError(
            500, "prediction_failed", "The model failed on this request's batch; retry."
        ) from exc
    except BatcherStopped as exc:
        raise ApiError(503, "shutting_down", "The service is shutting down; retry.") from exc


def ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


@ops_router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the process answers. Never depends on the model or the registry."""
    return Health(status="ok")


@ops_router.get("/readyz", response_model=Health, responses={503: {"model": ErrorBody}})
async def readyz(holder: HolderDep) -> Health:
    """Readiness: 200 once a model is in service, so traffic is routed only then."""
    served = holder.current
    if served is None:
        raise no_model_error(holder)
    return Health(status="ready", model_version=served.version)


@ops_router.get(
    "/metrics", response_class=PlainTextResponse, dependencies=[Depends(require_api_key)]
)
async def metrics(service_metrics: MetricsDep) -> PlainTextResponse:
    """Prometheus text exposition of the request, batching and model metrics.

    Behind the API key when one is set (a scraper sends it as ``X-API-Key``): the
    figures tell an outsider the model version, traffic and error rates.
    """
    return PlainTextResponse(service_metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)
