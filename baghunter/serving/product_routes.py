"""``/v1/attributes``, ``/v1/similar`` and ``/v1/audit``, plus catalog thumbnails.

They read photos exactly like ``/v1/predict`` (multipart field ``file`` or a raw image
body, same size and decoding limits), so a client uses one upload routine for all.
"""

from __future__ import annotations

import mimetypes
import re
import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from baghunter.images.cas import content_store
from baghunter.images.locations import read_bytes
from baghunter.serving.deps import (
    AttributeHolderDep,
    BatcherDep,
    HolderDep,
    SettingsDep,
    SimilarSearchDep,
    no_model_error,
    require_api_key,
)
from baghunter.serving.errors import ApiError
from baghunter.serving.images import (
    NO_FILE_TYPES,
    UploadLimits,
    decode_off_loop,
    media_type,
    read_form,
    read_photo,
)
from baghunter.serving.routes import ERROR_RESPONSES, SINGLE_UPLOAD_BODY, ms_since, score_in_batch
from baghunter.serving.schemas import (
    AttributeModelDetails,
    AttributeModelSummary,
    AttributesResponse,
    AuditFindingBody,
    AuditResponse,
    FieldPrediction,
    SimilarProduct,
    SimilarResponse,
    ValueScore,
)
from baghunter.storage import is_url

# Text fields an audit request may carry: the listing's claims, one field each.
MAX_CLAIMS = 32
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_AUDIT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "additionalProperties": {
                        "type": "string",
                        "description": "A claimed field of the listing, e.g. brand=Baggit, "
                        "articleType=Handbags, baseColour=Black.",
                    },
                }
            }
        },
    }
}

product_router = APIRouter(prefix="/v1", tags=["products"], dependencies=[Depends(require_api_key)])
# Catalog photos are public product images; <img> tags cannot send an API key.
catalog_router = APIRouter(tags=["products"])

TopK = Annotated[int | None, Query(ge=1, le=100, description="Results (default: the server's).")]


@product_router.get(
    "/attributes",
    response_model=AttributeModelDetails,
    responses=ERROR_RESPONSES,
    summary="The served attribute model: which attributes it reads, and their values",
)
async def attribute_model(holder: AttributeHolderDep) -> AttributeModelDetails:
    """What a listing check can compare: the upload page builds its form from this."""
    model = holder.current
    if model is None:
        raise no_model_error(holder)
    return AttributeModelDetails(
        name=model.name,
        version=_str(model.version),
        space=model.space,
        attributes={name: list(values) for name, values in model.attributes.items()},
    )


@product_router.post(
    "/attributes",
    response_model=AttributesResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=SINGLE_UPLOAD_BODY,
    summary="Predict a product photo's attributes (type, colour, gender, usage...)",
)
async def attributes(
    request: Request, holder: AttributeHolderDep, settings: SettingsDep, k: TopK = None
) -> AttributesResponse:
    started = time.perf_counter()
    model = holder.current
    if model is None:
        raise no_model_error(holder)
    image = await read_photo(request, UploadLimits.from_settings(settings))
    probs = await run_in_threadpool(model.predict_images, [image])
    top = k or min(settings.top_k, 3)
    return AttributesResponse(
        attributes={
            name: _top_values(model.attributes[name], rows[0], top) for name, rows in probs.items()
        },
        model=AttributeModelSummary(
            name=model.name, version=_str(model.version), space=model.space
        ),
        latency_ms=ms_since(started),
    )


@product_router.post(
    "/similar",
    response_model=SimilarResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=SINGLE_UPLOAD_BODY,
    summary="Find the catalog products that look most like a photo",
)
async def similar(
    request: Request, search: SimilarSearchDep, settings: SettingsDep, k: TopK = None
) -> SimilarResponse:
    started = time.perf_counter()
    state = search.current
    if state is None:
        raise ApiError(
            503, "no_index", f"Similar search is unavailable: {search.unavailable_reason}."
        )
    image = await read_photo(request, UploadLimits.from_settings(settings))
    matches = await run_in_threadpool(state.query, image, k or settings.top_k)
    return SimilarResponse(
        matches=[
            SimilarProduct(
                source=m.source,
                source_id=m.source_id,
                title=m.title,
                brand=m.brand,
                image_url=m.image_url,
                thumbnail_url=f"/catalog/images/{m.sha256}",
                sha256=m.sha256,
                score=round(float(m.score), 6),
            )
            for m in matches
        ],
        space=state.index.space,
        index_size=len(state.index),
        engine=state.index.engine,
        latency_ms=ms_since(started),
    )


@product_router.post(
    "/audit",
    response_model=AuditResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=_AUDIT_BODY,
    summary="Check a listing's claims (brand, attributes) against its photo",
)
async def audit(
    request: Request,
    brands: HolderDep,
    attribute_models: AttributeHolderDep,
    batcher: BatcherDep,
    settings: SettingsDep,
) -> AuditResponse:
    from baghunter.audit.scoring import AuditThresholds, assess

    started = time.perf_counter()
    content_type = media_type(request.headers.get("content-type"))
    if content_type in NO_FILE_TYPES:
        raise _missing_photo()
    if content_type != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send multipart/form-data: the photo as field 'file' and each claimed listing "
            "field as a text field (brand=..., articleType=...).",
        )
    limits = UploadLimits.from_settings(settings)
    uploads, claims = await read_form(
        request, "file", max_files=1, max_fields=MAX_CLAIMS + 1, limits=limits
    )
    if not uploads:
        raise _missing_photo()
    claims = {name: value.strip() for name, value in claims.items() if value.strip()}
    if not claims:
        raise ApiError(
            422,
            "no_claims",
            "Nothing to check: send the listing's fields as text fields, e.g. brand=Baggit.",
        )
    brand_model = brands.current
    attribute_model = attribute_models.current
    if brand_model is None and attribute_model is None:
        raise ApiError(503, "no_model", "Neither a brand nor an attribute model is in service yet.")
    image = await decode_off_loop(uploads[0], limits)

    predictions: dict[str, tuple[list[str], np.ndarray]] = {}
    models: dict[str, str] = {}
    if brand_model is not None and "brand" in claims:
        prediction = await score_in_batch(batcher, brand_model, image)
        predictions["brand"] = (brand_model.classes, prediction.probs)
        models[brand_model.details.name] = brand_model.version
    if attribute_model is not None:
        wanted = [name for name in claims if name in attribute_model.attributes]
        if wanted:
            rows = await run_in_threadpool(attribute_model.predict_images, [image])
            for name in wanted:
                predictions[name] = (attribute_model.attributes[name], rows[name][0])
            models[attribute_model.name or "attributes"] = _str(attribute_model.version) or ""
    thresholds = AuditThresholds.from_settings(settings)
    verdict = assess(claims, predictions, thresholds)
    return AuditResponse(
        findings=[AuditFindingBody(**vars(finding)) for finding in verdict.findings],
        consistent=not verdict.findings,
        scored=verdict.scored,
        unscorable=verdict.unscorable,
        unchecked=[name for name in claims if name not in predictions],
        predictions={
            name: _top_prediction(classes, row) for name, (classes, row) in predictions.items()
        },
        models=models,
        thresholds={
            "min_confidence": thresholds.min_confidence,
            "max_claimed_probability": thresholds.max_claimed_probability,
        },
        latency_ms=ms_since(started),
    )


@catalog_router.get("/catalog/images/{sha256}", include_in_schema=False)
async def catalog_image(sha256: str, settings: SettingsDep) -> Response:
    """A catalog photo from the content-addressed image store (for result thumbnails)."""
    headers = {"Cache-Control": "public, max-age=86400, immutable"}
    if not _SHA256.match(sha256):  # also keeps the lookup inside the image store
        raise ApiError(404, "not_found", "No catalog image has that sha256.")
    store = content_store(settings.images_root)
    # An object store is a network call away: off the event loop.
    relpath = await run_in_threadpool(store.find, sha256)
    if relpath is None:
        raise ApiError(404, "not_found", "No catalog image has that sha256.")
    location = store.location(relpath)
    if not is_url(location):
        return FileResponse(location, headers=headers)
    data = await run_in_threadpool(read_bytes, location)
    media_type = mimetypes.guess_type(relpath)[0] or "application/octet-stream"
    return Response(data, media_type=media_type, headers=headers)


def _top_values(classes: list[str], row: np.ndarray, k: int) -> list[ValueScore]:
    order = np.argsort(-np.asarray(row))[:k]
    return [ValueScore(value=classes[i], probability=_prob(row[i])) for i in order]


def _top_prediction(classes: list[str], row: np.ndarray) -> FieldPrediction:
    top = int(np.argmax(row))
    return FieldPrediction(value=classes[top], probability=_prob(row[top]))


def _prob(value: Any) -> float:
    # Clamped: a float32 softmax can overshoot 1.0 by an ulp.
    return min(1.0, max(0.0, float(value)))


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _missing_photo() -> ApiError:
    return ApiError(422, "missing_file", "No photo was sent: upload it as form field 'file'.")
