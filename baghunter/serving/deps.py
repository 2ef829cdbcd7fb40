"""FastAPI dependencies: the app's shared objects, the served model and the API key check.

The shared objects live on ``app.state`` (set by the app's lifespan) and reach endpoints
only through these functions, so an endpoint declares what it needs in its signature and
nothing reads module-level globals.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from baghunter.config import Settings
from baghunter.serving.batching import MicroBatcher
from baghunter.serving.errors import ApiError
from baghunter.serving.holder import AliasFollower, ModelHolder, ServedModel
from baghunter.serving.metrics import ServiceMetrics
from baghunter.serving.products import AttributeHolder, SimilarSearch

API_KEY_HEADER = "X-API-Key"

# auto_error=False: a missing key is answered by `require_api_key` in the service's JSON
# error shape (and only when a key is configured), not by FastAPI's 403.
_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.holder
    return holder


def get_batcher(request: Request) -> MicroBatcher:
    batcher: MicroBatcher = request.app.state.batcher
    return batcher


def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


def get_attribute_holder(request: Request) -> AttributeHolder:
    holder: AttributeHolder = request.app.state.attribute_holder
    return holder


def get_similar_search(request: Request) -> SimilarSearch:
    search: SimilarSearch = request.app.state.similar_search
    return search


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
AttributeHolderDep = Annotated[AttributeHolder, Depends(get_attribute_holder)]
SimilarSearchDep = Annotated[SimilarSearch, Depends(get_similar_search)]
HolderDep = Annotated[ModelHolder, Depends(get_holder)]
BatcherDep = Annotated[MicroBatcher, Depends(get_batcher)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]


def no_model_error(holder: AliasFollower[Any]) -> ApiError:
    return ApiError(
        503,
        "no_model",
        f"No version of {holder.name} holds the @{holder.alias} alias yet, or it is still "
        "loading; retry shortly.",
    )


def get_served_model(holder: HolderDep) -> ServedModel:
    """The model this request will use from start to finish (read once: see holder.py)."""
    served = holder.current
    if served is None:
        raise no_model_error(holder)
    return served


ServedModelDep = Annotated[ServedModel, Depends(get_served_model)]


def require_api_key(
    settings: SettingsDep, api_key: Annotated[str | None, Depends(_api_key_header)]
) -> None:
    """Refuse the request unless it carries the configured key (no key configured: open)."""
    if settings.api_key is None:
        return
    # Constant-time comparison: response timing must not reveal how much of a guess matched.
    if api_key is None or not hmac.compare_digest(
        api_key.encode("utf-8"), settings.api_key.encode("utf-8")
    ):
        raise ApiError(401, "unauthorized", f"A valid {API_KEY_HEADER} header is required.")
