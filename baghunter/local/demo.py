"""``baghunter demo``: the whole pipeline on one machine, with nothing to install but the venv.

It serves the generated sample catalog on 127.0.0.1, runs the real ``catalog_ingest``,
``brand_training``, ``image_features``, ``attribute_training`` and ``listing_audit`` DAGs
through Airflow (``airflow dags test --use-executor``: SQLite metadata, the embedded store,
a local MLflow under the data home), then asks the champions about photos the catalog
never had: brand, attributes, and the catalog's most similar products. A second run
reuses everything: the ingest finds nothing new, no photo is embedded twice and, when the
brand champion was trained on the same dataset, brand training is skipped.

Each task runs as Airflow runs it under the scheduler: in a worker process of the local
executor, reporting to an Airflow API server the demo starts on 127.0.0.1 for the while,
so each task's log is written where the Airflow UI reads it (``make up`` shows the demo's
runs with their logs), and each run's outcome is read from that API.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from baghunter.config import Settings, remember
from baghunter.local.sample.catalog import SampleCatalog, SampleCatalogRecord
from baghunter.local.sample.server import RouteServer
from baghunter.local.stack import DAGS, PLUGINS, find_project_folder
from baghunter.orchestration.sqlite import SETTING as SQLITE_CONNECT_ARGS

# Training settings that fit a 2-core CPU in a few minutes. VGG16's input size follows the
# sample's photos (and the shared embedding's size is tried too); the from-scratch
# fallback works on 32 px (tested to converge) and learns mostly by fine-tuning.
VGG16_CONF: dict[str, Any] = {"backbone": "vgg16", "batch_size": 16, "epochs_finetune": 2}
SCRATCH_CONF: dict[str, Any] = {
    "backbone": "scratch",
    "weights": "none",
    "image_size": 32,
    "batch_size": 8,
    "epochs_finetune": 15,
    "finetune_learning_rate": 1e-3,
    "patience": 5,
}
# The sample's listings carry these attributes (Farfetch-style feeds: colour, pattern and
# the most specific category, i.e. the bag's silhouette).
DEMO_ATTRIBUTES = ["category", "colour", "pattern"]
DEMO_MIN_COUNT = 5  # photos a value needs: the sample has about 30 per brand
# Lines of the DAG runs worth showing while they run: task starts and the project's own
# log messages (the full log, Airflow's included, goes to a file).
DEMO_DAGS = "^(catalog_ingest|brand_training|image_features|attribute_training|listing_audit)$"
PROGRESS = re.compile(r"Worker startup parse complete .*\btask_id=(\S+)|\[baghunter\.[\w.]+\]")
API_READY_S = 240.0  # the API server's start on two busy cores: usually 10-20 s


@dataclass
class DemoResult:
    products: int = 0
    images: dict[str, int] = field(default_factory=dict)
    failed_images: dict[str, str] = field(default_factory=dict)  # url -> reason
    duplicate_groups: int = 0
    backbone: str = ""  # the backbone this run chose
    weights_note: str = ""
    trained: bool = False
    champion_version: int | None = None
    champion_model: str = ""  # what the serving champion is, from its own run's params
    decision: str = ""  # this run's candidate: promoted or kept out, and why
    test_accuracy: float | None = None
    test_count: int | None = None  # photos in the champion's test split
    holdout_accuracy: float | None = None
    holdout_correct: int = 0
    holdout_count: int = 0
    predictions: list[dict[str, Any]] = field(default_factory=list)
    embedded: dict[str, Any] = field(default_factory=dict)  # this run's embedding report
    attributes_trained: bool = False
    attribute_champion_version: int | None = None
    attribute_metrics: dict[str, float] = field(default_factory=dict)  # test accuracy each
    audit: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def airflow_env(settings: Settings) -> dict[str, str]:
    """Environment for Airflow commands on the embedded default, all under the data home."""
    home = settings.home.resolve()
    airflow_home = home / "airflow"
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(find_project_folder(*DAGS)),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(find_project_folder(*PLUGINS)),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": SQLITE_CONNECT_ARGS,
            "BAGHUNTER_HOME": str(home),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    return env


def choose_backbone(settings: Settings) -> tuple[dict[str, Any], str]:
    """VGG16 when ImageNet weights can be had (a local file, or Keras' download)."""
    weights = settings.weights
    if weights not in ("imagenet", "none"):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"BAGHUNTER_WEIGHTS={weights}: no such file")
        return {
            **VGG16_CONF,
            "weights": str(path.resolve()),
        }, f"VGG16, ImageNet weights from {path}"
    if weights == "imagenet":
        import keras

        try:  # downloads once into ~/.keras, then works offline
            # Keras prints its "Downloading data from ..." line: kept off the console.
            with contextlib.redirect_stdout(io.StringIO()):
                keras.applications.VGG16(
                    weights="imagenet", include_top=False, input_shape=(32, 32, 3)
                )
            return {**VGG16_CONF, "weights": "imagenet"}, "VGG16, ImageNet weights (Keras download)"
        except Exception as exc:  # no network, proxy, disk: all mean "not available here"
            reason = str(exc).split(":")[-1].strip()[:80]
            return SCRATCH_CONF, (
                f"no ImageNet weights ({reason}): training the from-scratch CNN baseline "
                "instead; set BAGHUNTER_WEIGHTS=/path/to/vgg16_notop.weights.h5 for VGG16"
            )
    return SCRATCH_CONF, "BAGHUNTER_WEIGHTS=none: the from-scratch CNN baseline"


class Demo:
    def __init__(self, settings: Settings, catalog: SampleCatalog, console: Console) -> None:
        self.settings = settings
        self.catalog = catalog
        self.console = console
        self.env = airflow_env(settings)
        self.logs = settings.home.resolve() / "logs"
        self._api: subprocess.Popen[bytes] | None = None
        self._api_url = ""

    def airflow(self, *args: str, log_name: str) -> None:
        """Run an Airflow CLI command, its full output in a log file, highlights on screen."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"demo-{log_name}.log"
        command = [sys.executable, "-m", "airflow", *args]
        with (
            log_path.open("w") as log,
            subprocess.Popen(
                command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            ) as child,
        ):
            assert child.stdout is not None
            for line in child.stdout:
                log.write(line)
                match = PROGRESS.search(line)
                if match:
                    self.console.print("   " + _highlight(line, match), highlight=False)
        if child.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args[:2])} failed: see {log_path}")

    def dag_test(self, dag_id: str, conf: dict[str, Any]) -> None:
        """One run of ``dag_id``, its tasks run by the local executor; fails unless it succeeds."""
        api = self._api_server()
        logical_date = datetime.now(UTC).isoformat()
        self.airflow(
            "dags", "test", dag_id, logical_date, "-c", json.dumps(conf), "--use-executor",
            log_name=dag_id,
        )  # fmt: skip
        # `dags test` exits 0 even when a task fails: the run's state is the verdict.
        state = _run_state(api, dag_id, datetime.fromisoformat(logical_date))
        if state != "success":
            raise RuntimeError(f"{dag_id} ended {state}: see {self.logs / f'demo-{dag_id}.log'}")

    def _api_server(self) -> str:
        """The Airflow API server the tasks report to, started on first use."""
        if self._api is not None:
            return self._api_url
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        self._api_url = f"http://127.0.0.1:{port}"
        self.env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self._api_url}/execution/",
                # Only this process reads the public API, on loopback, while the demo runs.
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            }
        )
        log_path = self.logs / "demo-airflow-api-server.log"
        with log_path.open("wb") as log:
            self._api = subprocess.Popen(
                [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1",
                 "--port", str(port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + API_READY_S
        while not _healthy(self._api_url):
            if self._api.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the Airflow API server did not start: see {log_path}")
            time.sleep(1)
        return self._api_url

    def close(self) -> None:
        """Stop the API server (its process group: it runs workers of its own)."""
        if self._api is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._api.pid, signal.SIGTERM)
        try:
            self._api.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._api.pid, signal.SIGKILL)
            self._api.wait()
        self._api = None


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _run_state(api: str, dag_id: str, logical_date: datetime) -> str:
    """The state of ``dag_id``'s run at ``logical_date``, from Airflow's REST API."""
    answer = httpx.get(
        f"{api}/api/v2/dags/{dag_id}/dagRuns",
        params={"order_by": "-logical_date", "limit": 5},
        timeout=30,
    ).raise_for_status()
    for run in answer.json()["dag_runs"]:
        if run["logical_date"] and datetime.fromisoformat(run["logical_date"]) == logical_date:
            return str(run["state"])
    return "unknown (no such run)"


def _highlight(line: str, match: re.Match[str]) -> str:
    if match.group(1):
        return f"[bold]→ {match.group(1)}[/bold]"
    # "<time> [info     ] message [logger] key=value": keep the message
    text = line.split("] ", 1)[-1] if "] " in line else line
    text = re.sub(r"\s+\[baghunter\.[\w.]+\].*$", "", text.strip())
    # A line a task relays from its child process carries the child's own level and logger.
    return re.sub(r"^(?:DEBUG|INFO|WARNING|ERROR) baghunter\.[\w.]+: ", "", text)


def run_demo(
    settings: Settings,
    catalog: SampleCatalog,
    console: Console,
    *,
    port: int = 8765,
    retrain: bool = False,
    holdout_per_brand: int = 3,
) -> DemoResult:
    demo = Demo(settings, catalog, console)
    try:
        return _run_steps(demo, port=port, retrain=retrain, holdout_per_brand=holdout_per_brand)
    finally:
        demo.close()


def _run_steps(demo: Demo, *, port: int, retrain: bool, holdout_per_brand: int) -> DemoResult:
    from baghunter import registry
    from baghunter.catalog.stats import catalog_stats
    from baghunter.store import open_store

    settings, catalog, console = demo.settings, demo.catalog, demo.console
    result = DemoResult()
    # A fixed address: listing ids and image URLs are the catalog's natural keys, so a
    # second run on the same port finds everything already stored.
    server = RouteServer(port=port)
    server.routes.update(catalog.routes(server.base_url))
    server.start()
    remember_catalog(settings, catalog, server.url("/api/listings"), port)
    try:
        console.rule("[bold]1/6 · sample catalog")
        console.print(
            f"   {len(catalog.products)} products of {catalog.brands} fictional brands, plus "
            f"broken entries, at {server.url('/api/listings')}"
        )
        console.rule("[bold]2/6 · catalog_ingest (Airflow)")
        demo.airflow("db", "migrate", log_name="airflow-db")
        demo.dag_test(
            "catalog_ingest",
            {"kind": "farfetch", "location": server.url("/api/listings"), "incremental": False},
        )
    finally:
        server.stop()
    with open_store(settings) as store:
        stats = catalog_stats(store)
        for name in ("missing-image", "corrupt-image"):  # the catalog's planted faults
            image = store.get_image(server.url(f"/images/{name}.jpg"))
            if image and image["status"] == "failed":
                result.failed_images[image["url"]] = image["reason"]
    result.products = stats["products"]
    result.images = stats["images"]
    result.duplicate_groups = stats["duplicate_groups"]

    console.rule("[bold]3/6 · brand_training (Airflow)")
    conf, result.weights_note = choose_backbone(settings)
    remember_model_choices(settings, conf)
    result.backbone = conf["backbone"]
    console.print(f"   {result.weights_note}")
    registry.tracking(settings)
    champion = registry.champion_info(settings.model_name, settings.model_alias)
    dataset_version = _current_dataset_version(settings, catalog.brands)
    if champion and not retrain and champion["tags"].get("dataset_version") == dataset_version:
        console.print(
            f"   champion v{champion['version']} was trained on this dataset ({dataset_version}):"
            " skipping training (--retrain to train again)"
        )
    else:
        demo.dag_test("brand_training", {**conf, "brands": catalog.brands, "min_images": 10})
        result.trained = True
        champion = registry.champion_info(settings.model_name, settings.model_alias)
    if champion is None:
        raise RuntimeError("training finished without a champion")
    result.champion_version = int(champion["version"])
    result.champion_model = _model_of(champion)
    if result.trained:
        result.decision = _latest_decision(settings.model_name)
    result.test_accuracy = champion.get("metrics", {}).get("test_accuracy")
    test_count = champion.get("metrics", {}).get("test_count")
    result.test_count = int(test_count) if test_count is not None else None

    console.rule("[bold]4/6 · image_features (Airflow)")
    features = embedding_conf(conf)
    console.print(f"   shared embeddings: {features['backbone']} at {features['image_size']} px")
    space = _space_of(features)
    before = _vector_count(settings, space)
    demo.dag_test("image_features", features)
    result.embedded = _embedding_counts(settings, space, before)
    # image_features regroups copies by pHash and embedding: this is the catalog's count.
    with open_store(settings) as store:
        result.duplicate_groups = catalog_stats(store)["duplicate_groups"]

    console.rule("[bold]5/6 · attribute_training and listing_audit (Airflow)")
    attribute_champion = registry.champion_info(settings.attribute_model_name, settings.model_alias)
    current = (_attribute_dataset_version(settings), space)
    if (
        attribute_champion
        and not retrain
        and (
            attribute_champion["tags"].get("dataset_version"),
            attribute_champion["tags"].get("space"),
        )
        == current
    ):
        console.print(
            f"   champion v{attribute_champion['version']} was trained on this dataset and "
            "embedding space: skipping training (--retrain to train again)"
        )
    else:
        demo.dag_test(
            "attribute_training",
            {**features, "attributes": DEMO_ATTRIBUTES, "min_count": DEMO_MIN_COUNT, "epochs": 40},
        )
        result.attributes_trained = True
    # Scheduled attribute_training runs then learn what the sample's listings offer.
    remember(settings.home, attributes=DEMO_ATTRIBUTES, attribute_min_count=DEMO_MIN_COUNT)
    attribute_champion = registry.champion_info(settings.attribute_model_name, settings.model_alias)
    if attribute_champion is None:
        raise RuntimeError("attribute training finished without a champion")
    result.attribute_champion_version = int(attribute_champion["version"])
    result.attribute_metrics = {
        key.removeprefix("test_").removesuffix("_accuracy"): round(value, 3)
        for key, value in attribute_champion["metrics"].items()
        if key.endswith("_accuracy")
        and key.removeprefix("test_").removesuffix("_accuracy") in DEMO_ATTRIBUTES
    }
    demo.dag_test("listing_audit", {})
    result.audit = _audit_summary(settings)

    # `airflow dags test` leaves the DAGs it created paused; under `make up` the schedule
    # and the UI's buttons should work at once.
    demo.airflow("dags", "unpause", "--treat-dag-id-as-regex", "-y", DEMO_DAGS, log_name="unpause")

    console.rule("[bold]6/6 · the champions on photos the catalog never had")
    result.predictions = _predict_holdout(settings, catalog, features, holdout_per_brand)
    result.holdout_correct = sum(p["brand"] == p["predicted"] for p in result.predictions)
    result.holdout_count = len(result.predictions)
    result.holdout_accuracy = result.holdout_correct / result.holdout_count
    return result


def remember_catalog(settings: Settings, catalog: SampleCatalog, feed: str, port: int) -> None:
    """Make the data home remember the sample catalog as its source.

    Scheduled ingest runs read it (fetching from this machine is allowed for this home
    only: feeds are otherwise fetched from public addresses). The catalog's own
    parameters go to a file of the local harness: `baghunter up` serves the same catalog
    again at the same address, so the schedule and backfills have something to read.
    """
    remember(
        settings.home,
        sources=[{"kind": "farfetch", "location": feed, "incremental": True}],
        fetch_allow_networks=["127.0.0.1/32"],
    )
    SampleCatalogRecord(
        seed=catalog.seed, brands=catalog.brands, per_brand=catalog.per_brand, port=port
    ).save(settings.home)


def remember_model_choices(settings: Settings, conf: dict[str, Any]) -> None:
    """Make the data home remember the weights, embedding space and training recipe.

    Scheduled DAG runs, `baghunter up`'s service and the CLI then use them instead of the
    defaults (ImageNet weights, which a machine without network cannot download).
    """
    features = embedding_conf(conf)
    remember(
        settings.home,
        weights=conf.get("weights", "none"),
        embed_backbone=features["backbone"],
        embed_image_size=features["image_size"],
        train_defaults={k: v for k, v in conf.items() if k != "weights"},
    )


def embedding_conf(brand_conf: dict[str, Any]) -> dict[str, Any]:
    """The shared embedding: VGG16 at its default size when there are weights, else the
    from-scratch CNN (a random, fixed-seed backbone: enough for near-copies, weak for
    similarity between different photos)."""
    if brand_conf["backbone"] == "vgg16":
        return {"backbone": "vgg16", "weights": brand_conf["weights"], "image_size": 64}
    return {"backbone": "scratch", "weights": "none", "image_size": 32}


def _model_of(champion: dict[str, Any]) -> str:
    """The champion's backbone and input size, as its training run logged them."""
    from mlflow import MlflowClient

    if champion.get("run_id") is None:
        return "unknown model"
    params = MlflowClient().get_run(champion["run_id"]).data.params
    names = {"vgg16": "VGG16", "scratch": "from-scratch CNN"}
    backbone = names.get(params.get("backbone", ""), params.get("backbone", "unknown model"))
    size = champion.get("tags", {}).get("image_size")
    return f"{backbone} at {size} px" if size else backbone


def _latest_decision(name: str) -> str:
    """The champion gate's verdict on the newest version of ``name`` (this run's)."""
    from mlflow import MlflowClient

    from baghunter import registry

    versions = MlflowClient().search_model_versions(f"name = '{name}'")
    if not versions:
        return ""
    newest = max(versions, key=lambda version: int(version.version))
    verdict = newest.tags.get(registry.TAG_DECISION, "")
    reason = newest.tags.get(registry.TAG_REASON, "")
    return f"v{newest.version} {verdict}: {reason}" if verdict else ""


def _vector_count(settings: Settings, space: str) -> int:
    from baghunter.embeddings.pipeline import vector_store

    return len(vector_store(settings, space))


def _space_of(features: dict[str, Any]) -> str:
    from baghunter.embeddings.model import Embedder, EmbedderSpec

    return Embedder(EmbedderSpec(**features)).space


def _embedding_counts(settings: Settings, space: str, before: int) -> dict[str, Any]:
    """What the image_features run did, read from the catalog and the vector store."""
    from baghunter.embeddings.pipeline import catalog_image_paths, vector_store
    from baghunter.store import open_store

    with open_store(settings) as store:
        photos = set(catalog_image_paths(store, settings))
    vectors = vector_store(settings, space)
    computed = len(vectors) - before
    with_vector = len(photos) - len(vectors.missing(photos))
    return {
        "space": space,
        "images": len(photos),
        "computed": computed,
        "reused": with_vector - computed,
        "vectors": len(vectors),
    }


def _audit_summary(settings: Settings) -> dict[str, Any]:
    from baghunter.store import open_store

    with open_store(settings) as store:
        return store.audit_summary()


def _attribute_dataset_version(settings: Settings) -> str:
    from baghunter.attributes.dataset import DatasetConfig, DatasetError, curate
    from baghunter.store import open_store

    with open_store(settings) as store:
        try:
            config = DatasetConfig(attributes=tuple(DEMO_ATTRIBUTES), min_count=DEMO_MIN_COUNT)
            return curate(store, settings, config).version
        except DatasetError:
            return ""


def _current_dataset_version(settings: Settings, brands: int) -> str:
    from baghunter.dataset.curate import CurationConfig, CurationError, curate
    from baghunter.store import open_store

    with open_store(settings) as store:
        try:
            return curate(store, settings, CurationConfig(brands=brands, min_images=10)).version
        except CurationError:
            return ""


def _predict_holdout(
    settings: Settings, catalog: SampleCatalog, features: dict[str, Any], per_brand: int
) -> list[dict[str, Any]]:
    """Brand, attributes and the most similar catalog product of each unseen photo."""
    import io

    import numpy as np
    from PIL import Image

    from baghunter.attributes.model import load_attribute_model
    from baghunter.embeddings.model import Embedder, EmbedderSpec
    from baghunter.inference import BrandPredictor
    from baghunter.similar.index import SimilarIndex, default_index_dir

    predictor = BrandPredictor.load(f"models:/{settings.model_name}@{settings.model_alias}")
    attributes = load_attribute_model(
        f"models:/{settings.attribute_model_name}@{settings.model_alias}"
    )
    embedder = Embedder(EmbedderSpec(**features))
    index = SimilarIndex.load(default_index_dir(settings, embedder.space))
    holdout = catalog.holdout_images(n_per_brand=per_brand)
    images = [np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")) for _, jpeg in holdout]
    answers = predictor.predict(images)
    attribute_probs = attributes.predict_images(images)
    vectors = embedder.embed_arrays(images)
    out = []
    for i, ((brand, _), answer) in enumerate(zip(holdout, answers, strict=True)):
        (_, p), *_ = predictor.top_k(answer.probs, 1)
        predicted_attributes = {
            name: values[int(np.argmax(rows[i]))]
            for name, values in attributes.attributes.items()
            for rows in [attribute_probs[name]]
        }
        nearest = index.query(vectors[i], 1)[0]
        out.append(
            {
                "brand": brand,
                "predicted": predictor.brand(answer),  # None: "none of our brands"
                "probability": round(p, 3),
                "open_set_score": None
                if answer.open_set is None
                else round(answer.open_set.score, 3),
                "attributes": predicted_attributes,
                "most_similar": {"brand": nearest.brand, "source_id": nearest.source_id},
            }
        )
    return out


def _audit_line(summary: dict[str, Any]) -> str:
    """``store.audit_summary()`` in words: findings per field, most first."""
    if not summary:
        return "every listing agrees with its photos"
    total = sum(int(row["findings"]) for row in summary.values())
    fields = ", ".join(f"{field} {row['findings']}" for field, row in summary.items())
    return f"{total} listing claims contradicted by their photos ({fields})"


def print_summary(result: DemoResult, settings: Settings, console: Console) -> None:
    table = Table(title="Bag Hunter demo", show_header=False, title_justify="left")
    table.add_row(
        "catalog", f"{result.products} products, {result.duplicate_groups} near-duplicate groups"
    )
    table.add_row(
        "images",
        f"{result.images.get('ok', 0)} ok, {result.images.get('failed', 0)} failed: "
        + "; ".join(f"{u.rsplit('/', 1)[-1]} → {r}" for u, r in result.failed_images.items()),
    )
    table.add_row("this run", result.weights_note)
    accuracy = f"{result.test_accuracy:.2f}" if result.test_accuracy is not None else "n/a"
    table.add_row(
        "serving",
        f"{settings.model_name} v{result.champion_version} ({result.champion_model}), "
        f"test accuracy {accuracy} on {result.test_count} photos",
    )
    table.add_row(
        "brand training",
        result.decision if result.trained else "skipped: the champion knows this dataset",
    )
    table.add_row("unseen photos", f"{result.holdout_correct} of {result.holdout_count} recognised")
    embedded = result.embedded
    if embedded:
        table.add_row(
            "embeddings",
            f"{embedded.get('computed', 0)} photos embedded, {embedded.get('reused', 0)} reused",
        )
    table.add_row(
        "attributes",
        f"{settings.attribute_model_name} v{result.attribute_champion_version}, test accuracy "
        + ", ".join(f"{k} {v:.2f}" for k, v in result.attribute_metrics.items()),
    )
    table.add_row("listing audit", _audit_line(result.audit))
    console.print(table)
    preds = Table(
        "photo of",
        "predicted",
        "probability",
        "attributes",
        "most similar listing",
        title="Predictions",
        title_justify="left",
    )
    for p in result.predictions:
        mark = "✓" if p["brand"] == p["predicted"] else "✗"
        predicted = p["predicted"] or "none of our brands"
        similar = p["most_similar"]
        preds.add_row(
            p["brand"],
            f"{mark} {predicted}",
            f"{p['probability']:.2f}",
            ", ".join(p["attributes"].values()),
            f"{similar['brand']} {similar['source_id']}",
        )
    console.print(preds)
    console.print(
        "Next: [bold]make up[/bold] opens Airflow, the MLflow UI and the upload page; "
        f"everything lives in {settings.home.resolve()}"
    )
