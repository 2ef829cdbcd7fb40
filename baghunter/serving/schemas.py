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


class OpenSet(BaseModel):
    """Whether the photo shows one of the model's brands at all."""

    known: bool = Field(description="True: one of the model's brands; false: none of them.")
    score: float = Field(
        ge=0.0, le=1.0, description="Higher: more likely one of the model's brands."
    )
    threshold: float = Field(description="The score a photo must reach to be given a brand.")


class BrandAnswer(BaseModel):
    """One photo's answer."""

    brand: str | None = Field(
        description="The answer: the most probable brand, or null when the photo is judged "
        "to show none of the model's brands."
    )
    predictions: list[BrandScore] = Field(description="The k most probable brands, best first.")
    open_set: OpenSet | None = Field(
        description="The open-set verdict (null only for a model version trained without "
        "an open-set gate)."
    )


class PredictResponse(BrandAnswer):
    model: ModelSummary
    latency_ms: float = Field(description="Server-side time for this request.")


class BatchItem(BaseModel):
    """One uploaded file of a batch: its answer, or why it could not be scored."""

    filename: str | None = None
    brand: str | None = None
    predictions: list[BrandScore] | None = None
    open_set: OpenSet | None = None
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
    open_set_threshold: float | None = Field(
        default=None, description="The open-set score a photo must reach to get a brand."
    )
    loaded_at: str = Field(description="When this replica put the model into service (UTC).")
    engine: str = Field(
        default="keras", description="What runs the model here: keras, onnx or onnx-int8."
    )
    engine_reason: str = Field(default="", description="Why that engine (see the setting).")


class Health(BaseModel):
    status: str
    model_version: str | None = None


# --- attributes, similar products, listing audit ------------------------------------


class ValueScore(BaseModel):
    value: str
    probability: float = Field(ge=0.0, le=1.0)


class AttributeModelSummary(BaseModel):
    name: str | None
    version: str | None
    space: str = Field(description="Embedding space the model reads.")


class AttributeModelDetails(AttributeModelSummary):
    attributes: dict[str, list[str]] = Field(
        description="Each attribute the model reads from a photo, with the values it knows."
    )


class AttributesResponse(BaseModel):
    attributes: dict[str, list[ValueScore]] = Field(
        description="Per attribute, the k most probable values, best first."
    )
    model: AttributeModelSummary
    latency_ms: float


class SimilarProduct(BaseModel):
    source: str
    source_id: str
    title: str | None
    brand: str | None
    image_url: str = Field(description="The image's address in the catalog it came from.")
    thumbnail_url: str = Field(description="The same image served by this service.")
    sha256: str
    score: float = Field(description="Cosine similarity to the query photo (1 = identical).")


class SimilarResponse(BaseModel):
    matches: list[SimilarProduct] = Field(description="Most similar first.")
    space: str
    index_size: int = Field(description="Catalog images searched.")
    engine: str = Field(description="'exact' or 'hnsw' (approximate).")
    latency_ms: float


class AuditFindingBody(BaseModel):
    field: str
    claimed: str
    predicted: str
    confidence: float = Field(description="The model's probability of its own answer.")
    claimed_probability: float = Field(description="The model's probability of the claim.")


class FieldPrediction(BaseModel):
    value: str
    probability: float


class AuditResponse(BaseModel):
    findings: list[AuditFindingBody] = Field(description="Claims the photo contradicts.")
    consistent: bool = Field(description="True when no claim was contradicted.")
    scored: list[str] = Field(description="Claimed fields the models judged.")
    unscorable: list[str] = Field(description="Claims naming a value no model knows.")
    unchecked: list[str] = Field(description="Claimed fields no served model predicts.")
    predictions: dict[str, FieldPrediction] = Field(
        description="What the photo says, per judged field."
    )
    models: dict[str, str] = Field(description="Model name -> version that judged.")
    thresholds: dict[str, float]
    latency_ms: float
