"""Listing audit on a real catalog: precision and recall of findings against planted label swaps.

The attribute champion's held-out listings (the test split of the dataset it was trained
on) are copied into a scratch store; a fraction of them get one attribute swapped to
another value of the model's vocabulary (drawn by how often sellers use each value, so the
swaps are plausible ones); then the real audit (``audit_catalog``, attributes part, stored
features) runs over the copy. A finding on a planted field is a hit; a finding elsewhere
counts against precision, although on a real catalog some of them are genuine listing
errors (the bench prints examples to look at). The catalog of the data home is only read.

Side by side: the configured thresholds, a small sweep around them, and the naive baseline
that flags every field where the model's top answer differs from the claim.

    python bench/audit_bench.py --home DATA_HOME [--fraction 0.05] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from baghunter.audit.run import audit_catalog, catalog_listings
from baghunter.audit.scoring import AuditThresholds, assess, match_class
from baghunter.catalog.schema import ImageResult, Product
from baghunter.config import Settings
from baghunter.store import EmbeddedStore

FIELDS = ("articleType", "baseColour", "gender")
SWEEP_CONFIDENCE = (0.5, 0.7, 0.8, 0.9, 0.95)
SWEEP_CLAIMED = (0.01, 0.05, 0.2)
# min_confidence must be > 0 and max_claimed_probability < 1: these accept any disagreement.
BASELINE = AuditThresholds(min_confidence=1e-9, max_claimed_probability=1 - 1e-9)

Key = tuple[str, str, str]


def held_out_shas(model_run_id: str) -> set[str]:
    """Image hashes of the test split the model was evaluated on (never trained on)."""
    import mlflow

    data = mlflow.artifacts.load_dict(f"runs:/{model_run_id}/dataset/attributes.json")
    return {row["sha256"] for row in data["rows"] if row["split"] == "test"}


def copy_listings(source: EmbeddedStore, target: EmbeddedStore, shas: set[str]) -> int:
    """Copy the listings whose (first) photo is one of ``shas``, with their image records."""
    products, images = [], []
    for listing in catalog_listings(source):
        if listing.sha256 not in shas:
            continue
        doc = source.get_product(listing.source, listing.source_id)
        assert doc is not None
        product = Product(**{name: doc[name] for name in Product.model_fields})
        products.append(product)
        for url in product.image_urls:
            image = source.get_image(url)
            if image is not None and image["status"] == "ok":
                images.append(ImageResult(**{k: image[k] for k in ImageResult.model_fields}))
    target.upsert_products(products, datetime.now(UTC))
    target.record_image_results(images)
    return len(products)


def plant_swaps(
    store: EmbeddedStore, vocab: dict[str, list[str]], fraction: float, seed: int
) -> dict[Key, tuple[str, str]]:
    """Swap one attribute on ``fraction`` of the listings; ``key -> (true, planted)``."""
    rng = random.Random(seed)
    listings = catalog_listings(store)
    usage = {name: Counter(li.attributes.get(name) for li in listings) for name in FIELDS}
    chosen = rng.sample(listings, round(fraction * len(listings)))
    planted: dict[Key, tuple[str, str]] = {}
    edited = []
    for listing in chosen:
        fields = [
            name
            for name in FIELDS
            if name in vocab
            and match_class(listing.attributes.get(name) or "", vocab[name]) is not None
        ]
        if not fields:
            continue
        name = rng.choice(fields)
        true = listing.attributes[name]
        others = [v for v in vocab[name] if v != true]
        weights = [usage[name][v] + 1 for v in others]
        wrong = rng.choices(others, weights=weights)[0]
        planted[(listing.source, listing.source_id, name)] = (true, wrong)
        doc = store.get_product(listing.source, listing.source_id)
        assert doc is not None
        product = Product(**{k: doc[k] for k in Product.model_fields})
        edited.append(
            product.model_copy(update={"attributes": {**product.attributes, name: wrong}})
        )
    store.upsert_products(edited, datetime.now(UTC))
    return planted


def scores(found: set[Key], planted: set[Key]) -> dict[str, dict[str, float | int]]:
    out: dict[str, dict[str, float | int]] = {}
    for name in (*FIELDS, "all"):
        f = {k for k in found if name in ("all", k[2])}
        p = {k for k in planted if name in ("all", k[2])}
        hits = len(f & p)
        out[name] = {
            "planted": len(p),
            "findings": len(f),
            "hits": hits,
            "precision": round(hits / len(f), 4) if f else 0.0,
            "recall": round(hits / len(p), 4) if p else 0.0,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home", type=Path, required=True, help="Data home: catalog, features, MLflow"
    )
    parser.add_argument("--model", default=None, help="Attribute model URI [champion]")
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/audit.json"))
    args = parser.parse_args()

    from baghunter import registry
    from baghunter.attributes.model import load_attribute_model
    from baghunter.embeddings.pipeline import vector_store

    settings = Settings(_env_file=None, home=args.home, store="embedded")  # type: ignore[call-arg]
    registry.tracking(settings)
    uri = args.model or f"models:/{settings.attribute_model_name}@champion"
    model = load_attribute_model(uri)
    assert model.run_id, f"{uri} has no training run, so no held-out split"
    vocab = {name: classes for name, classes in model.attributes.items() if name in FIELDS}
    defaults = AuditThresholds.from_settings(settings)

    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        with (
            EmbeddedStore(settings.store_path) as real,
            EmbeddedStore(Path(tmp) / "catalog.sqlite") as scratch,
        ):
            scratch.ensure_schema()
            held_out = copy_listings(real, scratch, held_out_shas(model.run_id))
            planted = plant_swaps(scratch, vocab, args.fraction, args.seed)

            started = time.perf_counter()
            report = audit_catalog(
                scratch,
                settings,
                thresholds=defaults,
                attribute_model_uri=uri,
                parts=["attributes"],
                run_id="audit-bench",
            )
            audit_seconds = time.perf_counter() - started
            stored = {
                (f["source"], f["source_id"], f["field"]): f for f in scratch.iter_audit_findings()
            }
            listings = catalog_listings(scratch)

        # The sweep re-applies the scoring function to one set of predictions.
        vectors = vector_store(settings, model.space)
        shas = list(dict.fromkeys(li.sha256 for li in listings if li.sha256 in vectors))
        _, matrix = vectors.load(shas)
        probs = model.predict_features(matrix)
        row = {sha: i for i, sha in enumerate(shas)}

    def findings_at(thresholds: AuditThresholds) -> set[Key]:
        found: set[Key] = set()
        for listing in listings:
            if listing.sha256 not in row:
                continue
            predictions = {
                name: (classes, probs[name][row[listing.sha256]]) for name, classes in vocab.items()
            }
            claimed = {name: listing.attributes.get(name) for name in vocab}
            verdict = assess(claimed, predictions, thresholds)
            found |= {(listing.source, listing.source_id, f.field) for f in verdict.findings}
        return found

    planted_keys = set(planted)
    # The audit judged every attribute of the model; swaps were planted on FIELDS only, so
    # precision and recall are over those, and the other fields' findings are listed apart.
    other_fields = Counter(k[2] for k in stored if k[2] not in FIELDS)
    stored = {k: f for k, f in stored.items() if k[2] in FIELDS}
    at_defaults = findings_at(defaults)
    assert at_defaults == set(stored), "the sweep must reproduce the audit's own findings"
    sweep = []
    for confidence in SWEEP_CONFIDENCE:
        for claimed in SWEEP_CLAIMED:
            t = AuditThresholds(min_confidence=confidence, max_claimed_probability=claimed)
            result = scores(findings_at(t), planted_keys)
            sweep.append({**asdict(t), **{k: result[k] for k in ("all", *FIELDS)}})
    unplanted = [stored[k] for k in sorted(set(stored) - planted_keys)]
    unplanted.sort(key=lambda f: -f["confidence"])
    missed_by_field: dict[str, int] = defaultdict(int)
    for key in planted_keys - set(stored):
        missed_by_field[key[2]] += 1

    result: dict[str, Any] = {
        "model": {"uri": uri, "version": model.version, "space": model.space},
        "held_out_listings": held_out,
        "audited": report.audited,
        "skipped": report.skipped,
        "fraction": args.fraction,
        "seed": args.seed,
        "planted": dict(Counter(k[2] for k in planted_keys)),
        "defaults": {**asdict(defaults), **scores(set(stored), planted_keys)},
        "baseline_any_disagreement": scores(findings_at(BASELINE), planted_keys),
        "sweep": sweep,
        "missed_by_field": dict(missed_by_field),
        "findings_on_other_fields": dict(other_fields),
        "unplanted_examples": [
            {k: f[k] for k in ("source_id", "field", "claimed", "predicted", "confidence")}
            for f in unplanted[:15]
        ],
        "audit_seconds": round(audit_seconds, 2),
        "listings_per_second": round(len(listings) / audit_seconds, 1),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
