"""Response bodies of the brand service, as pydantic models (they also document the API)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Every error the service returns, whatever its status code."""

    error: str = Field(description="Short machine-readable code, e.g. 'too_large'.")
    detail: str = Field(description="A sentence for the person who sent the request.")


class BrandScore(BaseModel):
    brand: str
    probability: float = Field(ge=0.0, le=1.0)


class ModelSummary(BaseModel):
    """Which model answered: enough to reproduce or report a prediction."""

    name: str
    version: str
    alias: str


class PredictResponse(BaseModel):
    predictions: list[BrandScore] = Field(description="The k most probable brands, best first.")
    model: ModelSummary
    latency_ms: float = Field(description="Server-side time for this request.")


class BatchItem(BaseModel):
    """One uploaded file of a batch: its predictions, or why it could not be scored."""

    filename: str | None = None
    predictions: list[BrandScore] | None = None
    error: ErrorBody | None = None


class BatchResponse(BaseModel):
    results: list[BatchItem] = Field(description="One entry per uploaded file, in upload order.")
    model: ModelSummary
    latency_ms: float


class ModelDetails(BaseModel):
    """The served model's provenance, read from the registry when it was loaded."""

    name: str
    version: str
    alias: str
    run_id: str | None
    classes: list[str]
    image_size: int
    dataset_version: str | None = None
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Test-split metrics of the training run."
    )
    loaded_at: str = Field(description="When this replica put the model into service (UTC).")


class Health(BaseModel):
    status: str
    model_version: str | None = None
