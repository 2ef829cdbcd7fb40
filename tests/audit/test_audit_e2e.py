"""The listing audit end to end: catalog → features → champions → planted mismatches → findings.

Two generated catalogs, each in its own data home: a ``styles.csv``-shaped one whose
attributes are visible in the photos (audited by an attribute champion trained on its
stored features) and the bag sample catalog served over HTTP whose brands are visible
(audited by a brand champion trained on its photos). Both are real Keras models in a real
MLflow registry. Each home lacks the other champion, so the "champion absent" path runs
too. (The two catalogs share brand names, and the bags carry a gender, so one model on the
other's catalog would rightly flag listings whose photo says nothing about the field.)

Tests edit a few listings to claim what their photo does not show. Building a home takes
a while, so each is built once per module as a template, and each test audits a copy.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from baghunter.audit.run import audit_catalog
from baghunter.catalog.schema import ImageResult, ImageStatus, Product
from baghunter.cli import app
from baghunter.config import Settings, get_settings
from baghunter.embeddings.model import Embedder, EmbedderSpec
from baghunter.local.sample.catalog import SampleCatalog
from baghunter.local.sample.server import RouteServer
from baghunter.local.sample.styles import write_styles_catalog
from baghunter.store import open_store
from baghunter.store.base import AuditKey, CatalogStore

SPEC = EmbedderSpec(backbone="scratch", weights="none", image_size=32)
ATTRIBUTES = ("articleType", "baseColour", "gender")
BRAND_MODEL = "audit-test-brands"
ATTRIBUTE_MODEL = "audit-test-attributes"

pytestmark = pytest.mark.slow  # builds two catalogs and trains two models (tens of seconds)

runner = CliRunner()


def environment(home: Path) -> dict[str, str]:
    return {
        "BAGHUNTER_HOME": str(home),
        "BAGHUNTER_STORE": "embedded",
        "BAGHUNTER_EMBED_BACKBONE": SPEC.backbone,
        "BAGHUNTER_WEIGHTS": SPEC.weights,
        "BAGHUNTER_EMBED_IMAGE_SIZE": str(SPEC.image_size),
        "BAGHUNTER_MODEL_NAME": BRAND_MODEL,
        "BAGHUNTER_ATTRIBUTE_MODEL_NAME": ATTRIBUTE_MODEL,
        "BAGHUNTER_FETCH_ALLOW_NETWORKS": '["127.0.0.1/32"]',  # the test catalog is local
    }


def cli(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line[:1] in "{[")
    return json.loads("\n".join(lines[start:]))


def stored_product(store: CatalogStore, source: str, source_id: str) -> Product:
    doc = store.get_product(source, source_id)
    assert doc is not None
    return Product(**{name: doc[name] for name in Product.model_fields})


# --- building the template: two catalogs, their features, two champions -------------------


def train_attribute_champion(store: CatalogStore, settings: Settings, embedder: Embedder) -> None:
    """Heads on the stored features of the styles listings, registered as champion."""
    import keras
    import mlflow

    from baghunter import registry
    from baghunter.attributes.heads import HeadConfig, fit_heads
    from baghunter.attributes.model import export_model, log_attribute_model
    from baghunter.embeddings.pipeline import vector_store

    rows = [row for row in store.iter_catalog_images() if row.source.startswith("csv:")]
    vocab = {name: sorted({row.attributes[name] for row in rows}) for name in ATTRIBUTES}
    labels = {
        name: np.array([vocab[name].index(row.attributes[name]) for row in rows])
        for name in ATTRIBUTES
    }
    _, features = vector_store(settings, embedder.space).load([row.sha256 for row in rows])
    # Trained on every listing, to memorize this easy catalog: the test is about the audit.
    config = HeadConfig(hidden=128, dropout=0.1, learning_rate=1e-2, epochs=50, patience=50)
    heads, _ = fit_heads((features, labels), (features, labels), vocab, config)
    # Exported without its training loss, as the attribute pipeline's checkpoint is.
    heads.save(settings.home / "heads.keras")
    heads = keras.saving.load_model(settings.home / "heads.keras", compile=False)
    experiment = registry.get_or_create_experiment("audit-tests", settings)
    with mlflow.start_run(experiment_id=experiment) as run:
        ref = log_attribute_model(
            export_model(embedder.model, heads),
            run_id=run.info.run_id,
            name=ATTRIBUTE_MODEL,
            metadata={
                "attributes": vocab,
                "space": embedder.space,
                "image_size": SPEC.image_size,
                "dataset_version": "audit-test",
            },
            input_example=np.zeros((1, 32, 32, 3), np.uint8),
        )
    mlflow.MlflowClient().set_registered_model_alias(ref.name, "champion", str(ref.version))


def train_brand_champion(store: CatalogStore, settings: Settings, embedder: Embedder) -> None:
    """A softmax on the embedder's features of the sample bags, registered as champion."""
    import keras
    import mlflow

    from baghunter import registry
    from baghunter.embeddings.pipeline import vector_store

    rows = [row for row in store.iter_catalog_images() if not row.source.startswith("csv:")]
    classes = sorted({row.brand for row in rows if row.brand})
    labels = np.array([classes.index(row.brand or "") for row in rows])
    _, features = vector_store(settings, embedder.space).load([row.sha256 for row in rows])
    keras.utils.set_random_seed(3)
    normalize = keras.layers.Normalization()
    normalize.adapt(features)
    head = keras.Sequential(
        [keras.Input((features.shape[1],)), normalize, keras.layers.Dense(len(classes), "softmax")]
    )
    head.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    head.fit(features, labels, epochs=60, batch_size=len(labels), verbose=0)
    images = keras.Input((None, None, 3), dtype="uint8")
    classifier = keras.Model(images, head(embedder.model(images)))
    experiment = registry.get_or_create_experiment("audit-tests", settings)
    with mlflow.start_run(experiment_id=experiment) as run:
        ref = registry.register_model(
            classifier,
            run_id=run.info.run_id,
            name=BRAND_MODEL,
            classes=classes,
            dataset_version="audit-test",
            image_size=SPEC.image_size,
            input_example=np.zeros((1, 32, 32, 3), np.uint8),
        )
    mlflow.MlflowClient().set_registered_model_alias(ref.name, "champion", str(ref.version))


def build_home(root: Path, ingest: Any, train: Any) -> Path:
    """Ingest with ``ingest()``, embed, then ``train(store, settings, embedder)``."""
    from baghunter.embeddings.pipeline import embed_catalog

    home = root / "home"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in environment(home).items():
            patch.setenv(key, value)
        for key in ("BAGHUNTER_MONGO_URI", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            patch.delenv(key, raising=False)
        get_settings.cache_clear()
        settings = get_settings()
        ingest()
        embedder = Embedder(SPEC)
        with open_store(settings) as store:
            embed_catalog(store, settings, embedder=embedder)
            train(store, settings, embedder)
    get_settings.cache_clear()
    return home


@pytest.fixture(scope="module")
def styles_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 styles listings, embedded, with an attribute champion and no brand champion."""
    root = tmp_path_factory.mktemp("audit-styles")
    csv_path, images = write_styles_catalog(root / "styles", 48, seed=3, image_size=48)

    def ingest() -> None:
        cli("ingest", "csv", str(csv_path), "--images", str(images), "--json")

    return build_home(root, ingest, train_attribute_champion)


@pytest.fixture(scope="module")
def bags_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bag sample catalog, embedded, with a brand champion and no attribute champion."""
    bags = SampleCatalog(seed=5, brands=3, per_brand=10, image_size=48, page_size=50)

    def ingest() -> None:
        server = RouteServer()
        server.routes.update(bags.routes(server.base_url))
        server.start()
        try:
            cli("ingest", "farfetch", server.url("/api/listings"), "--json")
        finally:
            server.stop()

    return build_home(tmp_path_factory.mktemp("audit-bags"), ingest, train_brand_champion)


def private_copy(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings of a copy of the template's data home (the MLflow artifacts stay shared)."""
    home = tmp_path / "home"
    shutil.copytree(template, home)
    for key, value in environment(home).items():
        monkeypatch.setenv(key, value)
    for key in ("BAGHUNTER_MONGO_URI", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def styles(
    styles_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    yield private_copy(styles_template, tmp_path, monkeypatch)
    get_settings.cache_clear()


@pytest.fixture
def bags(
    bags_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    yield private_copy(bags_template, tmp_path, monkeypatch)
    get_settings.cache_clear()


# --- planting mismatches ------------------------------------------------------------------


def other(value: str, values: list[str]) -> str:
    return next(v for v in values if v != value)


def plant_attributes(store: CatalogStore) -> dict[AuditKey, str]:
    """Swap attributes of a few listings (photos unchanged); returns what the photos show."""
    rows = {(row.source, row.source_id): row for row in store.iter_catalog_images()}
    keys = sorted(rows)
    values = {name: sorted({row.attributes[name] for row in rows.values()}) for name in ATTRIBUTES}
    plan = [(keys[i], "baseColour") for i in (1, 7, 20)]
    plan += [(keys[i], "gender") for i in (3, 11)] + [(keys[30], "articleType")]
    plan += [(keys[7], "gender")]  # two wrong fields on one listing
    truth: dict[AuditKey, str] = {}
    changes: dict[tuple[str, str], dict[str, str]] = {}
    for key, name in plan:
        attributes = changes.setdefault(key, dict(rows[key].attributes))
        truth[(*key, name)] = attributes[name]
        attributes[name] = other(attributes[name], values[name])
    edited = [
        stored_product(store, *key).model_copy(update={"attributes": attributes})
        for key, attributes in changes.items()
    ]
    store.upsert_products(edited, datetime.now(UTC))
    return truth


def edit_attributes(store: CatalogStore, key: tuple[str, str], **values: str) -> None:
    product = stored_product(store, *key)
    attributes = {**product.attributes, **values}
    store.upsert_products(
        [product.model_copy(update={"attributes": attributes})], datetime.now(UTC)
    )


def finding_keys(store: CatalogStore) -> set[AuditKey]:
    return {(f["source"], f["source_id"], f["field"]) for f in store.iter_audit_findings()}


# --- attributes ---------------------------------------------------------------------------


def test_the_audit_finds_exactly_the_planted_attribute_swaps(styles: Settings) -> None:
    with open_store(styles) as store:
        clean = audit_catalog(store, styles)
        assert clean.findings == {} and finding_keys(store) == set()
        truth = plant_attributes(store)
        magenta = ("csv:styles", "10040")
        edit_attributes(store, magenta, baseColour="Magenta")

        report = audit_catalog(store, styles)

        assert finding_keys(store) == set(truth)
        for finding in store.iter_audit_findings():
            key = (finding["source"], finding["source_id"], finding["field"])
            assert finding["predicted"] == truth[key]
            assert finding["confidence"] >= 0.8 and finding["claimed_probability"] <= 0.05
            assert (finding["model_name"], finding["model_version"]) == (ATTRIBUTE_MODEL, 1)
            assert finding["space"] == Embedder(SPEC).space
            assert finding["run_id"] == report.run_id
    assert report.findings == {"articleType": 1, "baseColour": 3, "gender": 3}
    assert report.unscorable == {"baseColour": 1}  # the colour the model has no class for
    assert (report.listings, report.audited, report.skipped) == (48, {"attributes": 48}, 0)
    assert report.models["brand"] is None
    assert [note.split(":")[0] for note in report.notes] == ["brands not audited"]
    assert report.models["attributes"] == {
        "name": ATTRIBUTE_MODEL,
        "version": 1,
        "run_id": report.models["attributes"]["run_id"],
        "space": Embedder(SPEC).space,
    }
    assert (report.written, report.removed) == (7, 0)


def test_a_rerun_updates_findings_and_drops_those_fixed_since(styles: Settings) -> None:
    with open_store(styles) as store:
        truth = plant_attributes(store)
        first = audit_catalog(store, styles, run_id="run-1")
        before = {(f["source"], f["source_id"], f["field"]): f for f in store.iter_audit_findings()}
        fixed = sorted(truth)[0]
        edit_attributes(store, fixed[:2], **{fixed[2]: truth[fixed]})

        again = audit_catalog(store, styles, run_id="run-2")

        after = list(store.iter_audit_findings())
        summary = store.audit_summary()
    assert first.written == len(truth)
    assert (again.written, again.removed) == (len(truth) - 1, 1)
    assert len(after) == len(truth) - 1  # updated in place, never duplicated
    for finding in after:
        key = (finding["source"], finding["source_id"], finding["field"])
        assert key != fixed
        assert finding["run_id"] == "run-2"
        assert finding["first_flagged_at"] == before[key]["first_flagged_at"]
    assert sum(entry["findings"] for entry in summary.values()) == len(truth) - 1


def test_listings_without_a_vector_are_skipped_and_named(styles: Settings) -> None:
    with open_store(styles) as store:
        row = next(store.iter_catalog_images())
        # A new listing whose photo arrived after the last embedding run.
        url = "file:///new/photo.jpg"
        store.upsert_products(
            [
                stored_product(store, row.source, row.source_id).model_copy(
                    update={"source_id": "new-1", "image_urls": [url]}
                )
            ],
            datetime.now(UTC),
        )
        store.record_image_results(
            [ImageResult(url=url, status=ImageStatus.OK, sha256="f" * 64, path=row.path)]
        )

        report = audit_catalog(store, styles)

    assert (report.listings, report.audited["attributes"]) == (49, 48)
    assert (report.skipped, report.skipped_listings) == (1, [f"{row.source}:new-1"])
    assert any("1 listings skipped" in note for note in report.notes)


def test_without_champions_nothing_is_judged_and_stored_findings_stay(
    styles: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(styles) as store:
        plant_attributes(store)
        audit_catalog(store, styles)
        monkeypatch.setenv("BAGHUNTER_ATTRIBUTE_MODEL_NAME", "no-such-model")
        get_settings.cache_clear()

        report = audit_catalog(store, get_settings())

        assert len(finding_keys(store)) == 7
    assert report.audited == {} and report.findings == {}
    assert report.models == {"attributes": None, "brand": None}
    assert [note.split(":")[0] for note in report.notes] == [
        "attributes not audited",
        "brands not audited",
    ]


# --- brands -------------------------------------------------------------------------------


def test_the_audit_finds_brand_swaps_whatever_their_case(bags: Settings) -> None:
    with open_store(bags) as store:
        clean = audit_catalog(store, bags)
        assert clean.findings == {}, list(store.iter_audit_findings())
        rows = {(row.source, row.source_id): row for row in store.iter_catalog_images()}
        keys = sorted(rows)
        brands = sorted({row.brand or "" for row in rows.values()})
        truth: dict[AuditKey, str] = {}
        edited = []
        for i, spelling in ((2, str.lower), (9, str.upper)):
            true_brand = rows[keys[i]].brand or ""
            truth[(*keys[i], "brand")] = true_brand
            wrong = spelling(other(true_brand, brands))
            edited.append(stored_product(store, *keys[i]).model_copy(update={"brand": wrong}))
        # A brand the model was not trained on cannot be judged.
        edited.append(stored_product(store, *keys[4]).model_copy(update={"brand": "Zanotti"}))
        store.upsert_products(edited, datetime.now(UTC))

        report = audit_catalog(store, bags)

        findings = list(store.iter_audit_findings())
    assert {(f["source"], f["source_id"], f["field"]): f["predicted"] for f in findings} == truth
    assert {(f["model_name"], f["model_version"], f["space"]) for f in findings} == {
        (BRAND_MODEL, 1, None)
    }
    assert report.findings == {"brand": 2} and report.unscorable == {"brand": 1}
    assert report.audited == {"brand": report.listings}
    assert report.models["attributes"] is None
    assert [note.split(":")[0] for note in report.notes] == ["attributes not audited"]


# --- CLI and DAG --------------------------------------------------------------------------


def test_cli_runs_the_audit_and_summarizes_the_findings(styles: Settings) -> None:
    with open_store(styles) as store:
        truth = plant_attributes(store)

    report = cli("audit", "run", "--min-confidence", "0.9", "--part", "attributes", "--json")
    summary = cli("audit", "--json", "--examples", "2")

    assert report["thresholds"] == {"min_confidence": 0.9, "max_claimed_probability": 0.05}
    assert report["findings"] == {"articleType": 1, "baseColour": 3, "gender": 3}
    assert report["notes"] == []  # the brand part was not asked for, so no note on it
    assert summary["findings"] == len(truth)
    assert {name: entry["findings"] for name, entry in summary["fields"].items()} == {
        "baseColour": 3,
        "gender": 3,
        "articleType": 1,
    }
    colours = summary["fields"]["baseColour"]
    assert colours["models"] == [f"{ATTRIBUTE_MODEL}/1"]
    assert len(colours["examples"]) == 2
    for example in colours["examples"]:
        source, source_id = example["listing"].rsplit(":", 1)
        assert truth[(source, source_id, "baseColour")] == example["predicted"]


def test_cli_refuses_thresholds_out_of_range(styles: Settings) -> None:
    result = runner.invoke(app, ["audit", "run", "--min-confidence", "0"])

    assert result.exit_code == 2
    assert "min_confidence" in result.output
    result = runner.invoke(app, ["audit", "run", "--part", "colour"])
    assert result.exit_code == 2
    assert "unknown part" in result.output


@pytest.mark.airflow
def test_listing_audit_dag_stores_findings_stamped_with_its_run(
    styles: Settings, airflow_db: Path
) -> None:
    from airflow.models import DagBag

    from tests.conftest import REPO

    with open_store(styles) as store:
        truth = plant_attributes(store)
    bag = DagBag(dag_folder=str(REPO / "dags" / "listing_audit.py"))
    assert bag.import_errors == {}

    run = bag.dags["listing_audit"].test()

    assert run.state == "success"
    with open_store(styles) as store:
        findings = list(store.iter_audit_findings())
    assert {(f["source"], f["source_id"], f["field"]) for f in findings} == set(truth)
    assert {f["run_id"] for f in findings} == {run.run_id}


def test_an_audit_of_one_part_leaves_the_other_parts_findings_alone(styles: Settings) -> None:
    with open_store(styles) as store:
        truth = plant_attributes(store)
        audit_catalog(store, styles)

        report = audit_catalog(store, styles, parts=["brand"])

        assert finding_keys(store) == set(truth)
        with pytest.raises(ValueError, match="unknown audit parts"):
            audit_catalog(store, styles, parts=["colour"])
    assert report.audited == {} and report.models["attributes"] is None
    assert [note.split(":")[0] for note in report.notes] == ["brands not audited"]
