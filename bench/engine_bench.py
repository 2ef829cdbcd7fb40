"""Inference engines: Keras vs ONNX Runtime fp32 vs int8, one run, real catalog photos.

The brand champion trained by ``bench/brand_bench.py`` (its MLflow store and manifest) is
checked exactly as registration checks a new version (``engines.checks.check_engines``:
exports, top-1 agreement on the validation split, throughput), then served by the real
app (``python -m baghunter.serving``) once per ``BAGHUNTER_SERVING_ENGINE``, each in its
own process on 127.0.0.1, under single-photo uploads of the test split at each concurrency
level (the load generator of ``bench/serve_bench.py``). Per engine: requests/s and
p50/p99, top-1 agreement with Keras and accuracy on the test photos through the service,
and the replica's memory (peak and current RSS). Then the embedding stage's model: the
VGG16 embedder in Keras vs its exports, images/s and the cosine between their vectors.

    python bench/engine_bench.py --mlflow-db BRAND_BENCH_WORK/mlflow.db \\
        --manifest BRAND_BENCH_WORK/<version>.json --weights vgg16_notop.weights.h5
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import SERVICE_MAIN, Server, free_port, generate_load, running, server_env

from baghunter import registry
from baghunter.config import Settings

log = logging.getLogger("engine_bench")
ENGINES = ["keras", "onnx", "onnx-int8", "auto"]


def rss_mib(pid: int) -> dict[str, float]:
    """Current and peak resident memory of a process (Linux /proc)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return {"rss_mib": fields["VmRSS"], "peak_rss_mib": fields["VmHWM"]}


def server_pid(port: int) -> int:
    import psutil

    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == "LISTEN" and conn.pid:
            return int(conn.pid)
    raise RuntimeError(f"no process listens on {port}")


def answers(base: str, payloads: list[bytes]) -> list[str]:
    """The service's top-1 brand for each photo (its probabilities, not the open-set gate)."""
    out = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for i, body in enumerate(payloads):
            response = client.post(
                "/v1/predict", files={"file": (f"{i}.jpg", body, "image/jpeg")}
            ).raise_for_status()
            out.append(response.json()["predictions"][0]["brand"])
    return out


def agreement(a: list[str], b: list[str]) -> float:
    return float(np.mean([x == y for x, y in zip(a, b, strict=True)]))


def check_champion(settings: Settings, uri: str, manifest: Any) -> dict[str, Any]:
    """Registration's engine checks on the champion, recorded on its version."""
    from baghunter.engines.checks import check_engines, check_photos
    from baghunter.inference import with_features

    loaded = registry.load_classifier(uri)
    validation, calibration = check_photos(
        [e.path for e in manifest.split("val")],
        [e.path for e in manifest.split("train")],
        loaded.image_size,
    )
    started = time.perf_counter()
    checks = check_engines(
        with_features(loaded.model),
        image_size=loaded.image_size,
        answers=[0],
        validation=validation,
        calibration=calibration,
        run_id=str(loaded.run_id),
        name=str(loaded.name),
        version=int(loaded.version or 0),
    )
    return {
        "wall_s": round(time.perf_counter() - started, 1),
        "validation_photos": len(validation),
        "calibration_photos": len(calibration),
        "tags": registry.version_tags(str(loaded.name), int(loaded.version or 0)),
        "checks": [c.__dict__ for c in checks],
    }


def embedding_row(weights: Path, size: int, paths: list[str]) -> dict[str, Any]:
    """The embedder (the embedding stage's model) in Keras vs its ONNX exports."""
    from baghunter.embeddings.model import Embedder, EmbedderSpec
    from baghunter.engines.export import fixed_size_graph, quantize_int8, to_onnx
    from baghunter.engines.runners import KerasRunner, OnnxRunner, run_all, throughput
    from baghunter.training.data import load_images

    embedder = Embedder(EmbedderSpec("vgg16", str(weights), size))
    photos = load_images(paths, size)
    keras_runner = KerasRunner(embedder.model)
    reference = run_all(keras_runner, photos, 64)[0]
    row: dict[str, Any] = {
        "space": embedder.space,
        "photos": len(photos),
        "keras_images_per_s": throughput(keras_runner, photos, 64),
    }
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = to_onnx(fixed_size_graph(embedder.model, size), Path(tmp) / "fp32.onnx")
        int8 = quantize_int8(fp32, Path(tmp) / "int8.onnx", photos[:64])
        for engine, path in (("onnx", fp32), ("onnx-int8", int8)):
            runner = OnnxRunner(path, engine)
            vectors = run_all(runner, photos, 64)[0]
            cosine = np.sum(vectors * reference, 1) / (
                np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1)
            )
            row[engine] = {
                "images_per_s": throughput(runner, photos, 64),
                "cosine_mean": float(cosine.mean()),
                "cosine_min": float(cosine.min()),
            }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow-db", type=Path, required=True, help="brand bench's mlflow.db")
    parser.add_argument("--manifest", type=Path, required=True, help="its dataset manifest")
    parser.add_argument("--weights", type=Path, required=True, help="VGG16 no-top .weights.h5")
    parser.add_argument("--model", default="bag-brand-classifier")
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--embed-size", type=int, default=64)
    parser.add_argument("--embed-photos", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("bench/results/engines.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("httpx", "mlflow", "alembic", "tf2onnx", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from baghunter.dataset.manifest import Manifest

    manifest = Manifest.load(args.manifest)
    levels = [int(v) for v in args.levels.split(",")]
    test = manifest.split("test")
    payloads = [Path(e.path).read_bytes() for e in test]
    labels = [e.label for e in test]

    with tempfile.TemporaryDirectory(prefix="baghunter-engine-bench-") as tmp:
        work = Path(tmp)
        # A copy of the store: the checks write tags and metrics, the original stays as it was.
        shutil.copy(args.mlflow_db, work / "mlflow.db")
        tracking = f"sqlite:///{work / 'mlflow.db'}"
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            home=work / "home",
            store="embedded",
            mlflow_tracking_uri=tracking,
            model_name=args.model,
        )
        registry.tracking(settings)
        uri = registry.resolve_model_uri(f"models:/{args.model}@champion")[0]
        report: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "model": uri,
            "test_photos": len(test),
        }
        report["registration"] = check_champion(settings, uri, manifest)
        log.info("registration checks: %s", report["registration"]["checks"])

        runs = []
        context = multiprocessing.get_context("spawn")
        log_dir = args.out.parent / "engine-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as load_pool:
            for engine in ENGINES:
                port = free_port()
                env = server_env(
                    settings,
                    BAGHUNTER_SERVE_PORT=str(port),
                    BAGHUNTER_MLFLOW_TRACKING_URI=tracking,
                    BAGHUNTER_MODEL_NAME=args.model,
                    BAGHUNTER_SERVING_ENGINE=engine,
                )
                server = Server(
                    f"service {engine}",
                    [sys.executable, "-c", SERVICE_MAIN],
                    env,
                    f"http://127.0.0.1:{port}",
                    "/v1/predict",
                    batches=True,
                )
                with running(server, log_dir, 300) as base:
                    model = httpx.get(f"{base}/v1/model", timeout=30).json()
                    top1 = answers(base, payloads)
                    run: dict[str, Any] = {
                        "setting": engine,
                        "engine": model["engine"],
                        "engine_reason": model["engine_reason"],
                        "top1": top1,
                        "accuracy": agreement(top1, labels),
                        "levels": [],
                    }
                    for concurrency in levels:
                        level = load_pool.submit(
                            generate_load,
                            base + "/v1/predict",
                            payloads,
                            concurrency,
                            args.warmup,
                            args.duration,
                        ).result()
                        log.info("%s c=%d: %s", engine, concurrency, json.dumps(level))
                        run["levels"].append(level)
                    run["memory"] = rss_mib(server_pid(port))
                runs.append(run)
                log.info("%s: %s", engine, {k: v for k, v in run.items() if k != "top1"})

        baseline = runs[0]["top1"]
        for run in runs:
            run["top1_agreement_with_keras"] = agreement(run.pop("top1"), baseline)
        report["serving"] = runs
        keras_c8 = next(lv for lv in runs[0]["levels"] if lv["concurrency"] == 8)
        auto = runs[-1]
        auto_c8 = next(lv for lv in auto["levels"] if lv["concurrency"] == 8)
        report["target"] = {
            "default_engine": auto["engine"],
            "throughput_vs_keras_at_c8": auto_c8["requests_per_s"] / keras_c8["requests_per_s"],
            "top1_agreement": auto["top1_agreement_with_keras"],
        }
        report["embedding"] = embedding_row(
            args.weights,
            args.embed_size,
            [e.path for e in manifest.entries[: args.embed_photos]],
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({k: v for k, v in report.items() if k != "registration"}, indent=2))


if __name__ == "__main__":
    main()
