"""``baghunter demo``: the whole pipeline on one machine, with nothing to install but the venv.

It serves the generated sample catalog on 127.0.0.1, runs the real ``catalog_ingest`` and
``brand_training`` DAGs through Airflow (``airflow dags test``: SQLite metadata, the
embedded store, a local MLflow under the data home), then asks the champion about photos
it has never seen. A second run reuses everything: the ingest finds nothing new and, when
the champion was trained on the same dataset, training is skipped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from baghunter.config import Settings
from baghunter.sample.catalog import SampleCatalog
from baghunter.sample.server import RouteServer
from baghunter.stack import DAGS, PLUGINS, find_project_folder

# Training settings that fit a 2-core CPU in a few minutes. VGG16 sees the sample's 128 px
# photos at their own size; the from-scratch fallback works on 32 px (tested to converge).
VGG16_CONF = {
    "backbone": "vgg16",
    "image_size": 128,
    "batch_size": 16,
    "epochs_frozen": 10,
    "epochs_finetune": 2,
    "learning_rate": 1e-3,
    "finetune_learning_rate": 1e-5,
}
SCRATCH_CONF = {
    "backbone": "scratch",
    "weights": "none",
    "image_size": 32,
    "batch_size": 8,
    "epochs_frozen": 1,
    "epochs_finetune": 15,
    "finetune_learning_rate": 1e-3,
    "patience": 5,
}
# Lines of the DAG runs worth showing while they run: task starts and the project's own
# log messages (the full log, Airflow's included, goes to a file).
PROGRESS = re.compile(r"\[DAG TEST\] starting task_id=(\S+)|\[baghunter\.[\w.]+\]")


@dataclass
class DemoResult:
    products: int = 0
    images: dict[str, int] = field(default_factory=dict)
    failed_images: dict[str, str] = field(default_factory=dict)  # url -> reason
    duplicate_groups: int = 0
    backbone: str = ""
    weights_note: str = ""
    trained: bool = False
    champion_version: int | None = None
    test_accuracy: float | None = None
    holdout_accuracy: float | None = None
    predictions: list[dict[str, Any]] = field(default_factory=list)

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
            "BAGHUNTER_HOME": str(home),
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
            keras.applications.VGG16(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
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
        self.airflow("dags", "test", dag_id, "-c", json.dumps(conf), log_name=dag_id)
        # `dags test` exits 0 even when a task fails; the run's state is the verdict.
        state = _last_run_state(self.logs / f"demo-{dag_id}.log")
        if state != "success":
            raise RuntimeError(f"{dag_id} ended {state}: see {self.logs / f'demo-{dag_id}.log'}")


def _highlight(line: str, match: re.Match[str]) -> str:
    if match.group(1):
        return f"[bold]→ {match.group(1)}[/bold]"
    # "<time> [info     ] message [logger] key=value": keep the message
    text = line.split("] ", 1)[-1] if "] " in line else line
    return re.sub(r"\s+\[baghunter\.[\w.]+\].*$", "", text.strip())[:110]


def _last_run_state(log_path: Path) -> str:
    states = re.findall(r"DagRun Finished: .*?state=(\w+)", log_path.read_text())
    return states[-1] if states else "unknown"


def run_demo(
    settings: Settings,
    catalog: SampleCatalog,
    console: Console,
    *,
    port: int = 8765,
    retrain: bool = False,
) -> DemoResult:
    from baghunter import registry
    from baghunter.catalog.stats import catalog_stats
    from baghunter.store import open_store

    result = DemoResult()
    demo = Demo(settings, catalog, console)
    # A fixed address: listing ids and image URLs are the catalog's natural keys, so a
    # second run on the same port finds everything already stored.
    server = RouteServer(port=port)
    server.routes.update(catalog.routes(server.base_url))
    server.start()
    try:
        console.rule("[bold]1/4 · sample catalog")
        console.print(
            f"   {len(catalog.products)} products of {catalog.brands} fictional brands, plus "
            f"broken entries, at {server.url('/api/listings')}"
        )
        console.rule("[bold]2/4 · catalog_ingest (Airflow)")
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

    console.rule("[bold]3/4 · brand_training (Airflow)")
    conf, result.weights_note = choose_backbone(settings)
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
    result.test_accuracy = champion.get("metrics", {}).get("test_accuracy")

    console.rule("[bold]4/4 · the champion on photos it has never seen")
    result.predictions = _predict_holdout(settings, catalog)
    correct = [p["brand"] == p["predicted"] for p in result.predictions]
    result.holdout_accuracy = sum(correct) / len(correct)
    return result


def _current_dataset_version(settings: Settings, brands: int) -> str:
    from baghunter.dataset.curate import CurationConfig, CurationError, curate
    from baghunter.store import open_store

    with open_store(settings) as store:
        try:
            return curate(store, settings, CurationConfig(brands=brands, min_images=10)).version
        except CurationError:
            return ""


def _predict_holdout(settings: Settings, catalog: SampleCatalog) -> list[dict[str, Any]]:
    import io

    import numpy as np
    from PIL import Image

    from baghunter.registry import load_classifier
    from baghunter.training.predict import predict_proba, top_k

    loaded = load_classifier(f"models:/{settings.model_name}@{settings.model_alias}")
    holdout = catalog.holdout_images(n_per_brand=3)
    images = [np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")) for _, jpeg in holdout]
    probs = predict_proba(loaded.model, images)
    out = []
    for (brand, _), row in zip(holdout, probs, strict=True):
        (best, p), *_ = top_k(row, loaded.classes, 1)
        out.append({"brand": brand, "predicted": best, "probability": round(p, 3)})
    return out


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
    table.add_row("model", result.weights_note)
    accuracy = f"{result.test_accuracy:.2f}" if result.test_accuracy is not None else "n/a"
    table.add_row(
        "champion",
        f"{settings.model_name} v{result.champion_version}, test accuracy {accuracy}"
        + ("" if result.trained else " (reused)"),
    )
    table.add_row("unseen photos", f"{result.holdout_accuracy:.0%} recognised")
    console.print(table)
    preds = Table("photo of", "predicted", "probability", title="Predictions", title_justify="left")
    for p in result.predictions:
        mark = "✓" if p["brand"] == p["predicted"] else "✗"
        preds.add_row(p["brand"], f"{mark} {p['predicted']}", f"{p['probability']:.2f}")
    console.print(preds)
    console.print(
        "Next: [bold]make up[/bold] opens Airflow, the MLflow UI and the upload page; "
        f"everything lives in {settings.home.resolve()}"
    )
