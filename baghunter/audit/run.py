"""Audit the whole catalog: every listing's brand and attributes against its photo.

Attributes are predicted from the *stored* embeddings (the attribute champion is a head on
the shared features, so no image is decoded or embedded again); brands by the brand
champion on the image files, since that model reads pixels. Either champion may be
missing (a fresh deployment, a catalog without brands): that part is skipped with a note
and the other still runs.

Each listing is judged on its first fetched image, by the same
:func:`~baghunter.audit.scoring.assess` that serves ``POST /v1/audit``. The findings go to
the store's ``audits`` collection, replacing what earlier runs found for every field this
run could judge, so the collection always holds the current mismatches.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from baghunter.audit.scoring import AuditThresholds, assess, match_class
from baghunter.config import Settings
from baghunter.store.base import AuditKey, AuditRecord, CatalogStore

if TYPE_CHECKING:
    from baghunter.attributes.model import AttributeModel
    from baghunter.inference import BrandPredictor

logger = logging.getLogger(__name__)

BRAND_FIELD = "brand"
PARTS = ("attributes", "brand")  # what an audit can judge, each by its own champion
CHAMPION = "champion"
# The report names at most this many skipped listings; the count is always exact.
MAX_NAMED = 50


@dataclass(frozen=True)
class Listing:
    """What the audit needs of one listing: its claims and the photo they are checked on."""

    source: str
    source_id: str
    brand: str | None
    attributes: dict[str, str]
    sha256: str
    path: str  # relative to the image root

    @property
    def name(self) -> str:
        return f"{self.source}:{self.source_id}"


@dataclass
class AuditReport:
    run_id: str
    audited_at: str  # ISO-8601, UTC
    listings: int  # listings with a fetched image
    audited: dict[str, int]  # listings judged per part ("attributes", "brand")
    findings: dict[str, int]  # per field, this run
    unscorable: dict[str, int]  # per field: claims the model has no class for
    skipped: int  # listings whose image has no vector in the attribute model's space
    skipped_listings: list[str]  # the first MAX_NAMED of them, "source:source_id"
    models: dict[str, dict[str, Any] | None]  # per part, None when that champion is absent
    thresholds: dict[str, float]
    written: int
    removed: int  # earlier findings of fields that are clean now
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def catalog_listings(store: CatalogStore) -> list[Listing]:
    """Every listing with a fetched image, paired with its first one (in source-key order)."""
    listings: dict[tuple[str, str], Listing] = {}
    for row in store.iter_catalog_images():
        key = (row.source, row.source_id)
        if key not in listings:
            listings[key] = Listing(
                source=row.source,
                source_id=row.source_id,
                brand=row.brand,
                attributes=dict(row.attributes),
                sha256=row.sha256,
                path=row.path,
            )
    return list(listings.values())


def new_run_id() -> str:
    return f"audit-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def _load_attribute_model(uri: str, notes: list[str]) -> AttributeModel | None:
    from baghunter.attributes.model import load_attribute_model
    from baghunter.registry import ModelNotFound

    try:
        return load_attribute_model(uri)
    except ModelNotFound as exc:
        notes.append(f"attributes not audited: {exc}")
        return None


def _load_brand_model(uri: str, engine: str, notes: list[str]) -> BrandPredictor | None:
    from baghunter.inference import BrandPredictor
    from baghunter.registry import ModelNotFound

    try:
        # The serving engine: the audit gives a listing the answer the service would give.
        return BrandPredictor.load(uri, engine=engine)
    except ModelNotFound as exc:
        notes.append(f"brands not audited: {exc}")
        return None


def _rows_by_sha(shas: Sequence[str]) -> tuple[list[str], dict[str, int]]:
    unique = list(dict.fromkeys(shas))
    return unique, {sha: i for i, sha in enumerate(unique)}


def audit_catalog(
    store: CatalogStore,
    settings: Settings,
    *,
    thresholds: AuditThresholds | None = None,
    attribute_model_uri: str | None = None,
    brand_model_uri: str | None = None,
    run_id: str | None = None,
    parts: Collection[str] = PARTS,
) -> AuditReport:
    """Judge every listing with a fetched image and store the findings; returns the report.

    The champions of ``settings.attribute_model_name`` and ``settings.model_name`` are
    used unless other model URIs are given. ``parts`` limits the audit to attributes or
    brands; the other part's stored findings are then left as they are.
    """
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown audit parts {unknown}; choose from {list(PARTS)}")
    from baghunter import registry
    from baghunter.embeddings.pipeline import vector_store

    started = time.perf_counter()
    thresholds = thresholds or AuditThresholds.from_settings(settings)
    run_id = run_id or new_run_id()
    audited_at = datetime.now(UTC)
    notes: list[str] = []
    registry.tracking(settings)
    listings = catalog_listings(store)
    attribute_uri = attribute_model_uri or f"models:/{settings.attribute_model_name}@{CHAMPION}"
    brand_uri = brand_model_uri or f"models:/{settings.model_name}@{CHAMPION}"
    attribute_model = _load_attribute_model(attribute_uri, notes) if "attributes" in parts else None
    brand_model = (
        _load_brand_model(brand_uri, settings.serving_engine, notes)
        if BRAND_FIELD in parts
        else None
    )

    # Attribute predictions, from the stored vectors of the model's own space.
    attribute_rows: dict[str, int] = {}
    attribute_probs: dict[str, np.ndarray] = {}
    skipped: list[Listing] = []
    if attribute_model is not None:
        vectors = vector_store(settings, attribute_model.space)
        missing = set(vectors.missing(listing.sha256 for listing in listings))
        skipped = [listing for listing in listings if listing.sha256 in missing]
        shas, attribute_rows = _rows_by_sha(
            [listing.sha256 for listing in listings if listing.sha256 not in missing]
        )
        if shas:
            _, matrix = vectors.load(shas)
            attribute_probs = attribute_model.predict_features(matrix)
        if skipped:
            notes.append(
                f"{len(skipped)} listings skipped: their image has no vector in "
                f"{attribute_model.space} (run the embedding step first)"
            )

    # Brand predictions, from the image files, for claims the brand model can judge.
    brand_rows: dict[str, int] = {}
    brand_probs = np.zeros((0, 0), dtype=np.float32)
    if brand_model is not None:
        judged = [
            listing
            for listing in listings
            if listing.brand and match_class(listing.brand, brand_model.classes) is not None
        ]
        shas, brand_rows = _rows_by_sha([listing.sha256 for listing in judged])
        path_of = {listing.sha256: listing.path for listing in judged}
        brand_probs = brand_model.file_probabilities(
            [settings.image_location(path_of[sha]) for sha in shas], settings.embed_batch_size
        )

    records: list[AuditRecord] = []
    scope: list[AuditKey] = []
    findings: Counter[str] = Counter()
    unscorable: Counter[str] = Counter()
    audited: Counter[str] = Counter()
    for listing in listings:
        claimed: dict[str, str | None] = {}
        predictions: dict[str, tuple[Sequence[str], np.ndarray]] = {}
        owner: dict[str, tuple[str, int | None, str | None]] = {}  # field -> model
        if attribute_model is not None and listing.sha256 in attribute_rows:
            audited["attributes"] += 1
            row = attribute_rows[listing.sha256]
            for name, classes in attribute_model.attributes.items():
                claimed[name] = listing.attributes.get(name)
                predictions[name] = (classes, attribute_probs[name][row])
                owner[name] = (
                    attribute_model.name or attribute_uri,
                    attribute_model.version,
                    attribute_model.space,
                )
        if brand_model is not None:
            audited["brand"] += 1
            claimed[BRAND_FIELD] = listing.brand
            owner[BRAND_FIELD] = (brand_model.name or brand_uri, brand_model.version, None)
            if listing.sha256 in brand_rows:
                predictions[BRAND_FIELD] = (
                    brand_model.classes,
                    brand_probs[brand_rows[listing.sha256]],
                )
            elif listing.brand:
                unscorable[BRAND_FIELD] += 1
        scope.extend((listing.source, listing.source_id, name) for name in owner)
        verdict = assess(claimed, predictions, thresholds)
        unscorable.update(verdict.unscorable)
        for found in verdict.findings:
            model_name, model_version, space = owner[found.field]
            findings[found.field] += 1
            records.append(
                AuditRecord(
                    source=listing.source,
                    source_id=listing.source_id,
                    field=found.field,
                    claimed=found.claimed,
                    predicted=found.predicted,
                    confidence=min(max(found.confidence, 0.0), 1.0),
                    claimed_probability=min(max(found.claimed_probability, 0.0), 1.0),
                    model_name=model_name,
                    model_version=model_version,
                    space=space,
                    image_sha256=listing.sha256,
                )
            )

    write = store.replace_audit_findings(records, scope, run_id, audited_at)
    report = AuditReport(
        run_id=run_id,
        audited_at=audited_at.isoformat(timespec="seconds"),
        listings=len(listings),
        audited=dict(audited),
        findings=dict(sorted(findings.items())),
        unscorable=dict(sorted(unscorable.items())),
        skipped=len(skipped),
        skipped_listings=[listing.name for listing in skipped[:MAX_NAMED]],
        models={
            "attributes": None
            if attribute_model is None
            else {
                "name": attribute_model.name,
                "version": attribute_model.version,
                "run_id": attribute_model.run_id,
                "space": attribute_model.space,
            },
            "brand": None
            if brand_model is None
            else {
                "name": brand_model.name,
                "version": brand_model.version,
                "run_id": brand_model.run_id,
            },
        },
        thresholds=asdict(thresholds),
        written=write.written,
        removed=write.removed,
        notes=notes,
        seconds=round(time.perf_counter() - started, 3),
    )
    logger.info(
        "audit %s: %d listings, findings %s, %d skipped",
        run_id,
        len(listings),
        report.findings,
        report.skipped,
    )
    return report
