"""Serving benchmark: the micro-batching service vs a one-predict-per-request baseline, one run.

A VGG16 classifier is registered as ``champion`` in a throwaway MLflow store and served by

* **service**: Bag Hunter's app (``python -m baghunter.serving``, uvicorn, micro-batching),
  once per ``--batch`` setting (``MAX_SIZE:MAX_WAIT_MS``; the first is the default);
* **naive**: ``bench/naive_app.py``, the original approach: one ``model.predict`` per
  request, in the server's thread pool, no batching.

Both load the model from the registry and run as subprocesses on 127.0.0.1. Load comes from
a second process (asyncio + httpx): single-photo multipart uploads at each concurrency level
for a fixed duration after a warm-up, giving p50/p95/p99 latency and requests/s. For scale,
one bare forward pass (``model.predict_on_batch`` on one resized image, median of many) is
timed in this process at the start (at the served size, as a full micro-batch, and at
224 px) and again next to each server's levels, with that server idle.

    python bench/serve_bench.py --weights VGG16_NOTOP.weights.h5 [--photos IMAGES_DIR] \
        [--image-size 96] [--batch 16:5 --batch 32:20] [--duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import logging
import multiprocessing
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from baghunter import registry
from baghunter.config import Settings

log = logging.getLogger("serve_bench")

CLASSES = ["Baggit", "Kiara", "Lino Perros", "Murcia"]  # only names: accuracy is not measured
NAIVE_APP = Path(__file__).resolve().with_name("naive_app.py")

# ``python -m baghunter.serving``, with the VGG16 preprocessing layer registered first: the
# service loads models through ``registry.load_classifier``, which deserializes them
# without importing ``baghunter.training.backbones``, so on its own it cannot load a VGG16
# champion (``Could not locate class 'CaffePreprocess'``). A work-around for the benchmark,
# reported as a bug, not a change to the serving code.
SERVICE_MAIN = (
    "import baghunter.training.backbones; from baghunter.serving.__main__ import main; main()"
)


@dataclass(frozen=True)
class Server:
    """How to start one server under test and where it answers."""

    label: str
    argv: list[str]
    env: dict[str, str]
    base_url: str
    predict_path: str
    batches: bool  # exposes the micro-batcher's batch-size histogram on /metrics


# --- the model --------------------------------------------------------------------------


def vgg16_classifier(weights: Path, image_size: int) -> Any:
    """The product's classifier shape (shared embedder + head), ImageNet-initialised."""
    from baghunter.embeddings.model import Embedder, EmbedderSpec
    from baghunter.training.model import build_classifier, classification_head

    embedder = Embedder(EmbedderSpec("vgg16", str(weights), image_size))
    head = classification_head(sum(embedder.block_dims), len(CLASSES), ())
    model, _, _ = build_classifier(embedder, head, pool_depth=3, augment=False)
    return model


def register_champion(settings: Settings, weights: Path, image_size: int) -> str:
    """Register an ImageNet-initialised VGG16 classifier and point ``champion`` at it."""
    import mlflow
    from mlflow import MlflowClient

    model = vgg16_classifier(weights, image_size)
    experiment_id = registry.get_or_create_experiment("serve-bench", settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"vgg16-{image_size}px") as run:
        ref = registry.register_model(
            model,
            run_id=run.info.run_id,
            name=settings.model_name,
            classes=CLASSES,
            dataset_version="serve-bench",
            image_size=image_size,
            input_example=np.zeros((1, image_size, image_size, 3), np.uint8),
        )
    MlflowClient().set_registered_model_alias(ref.name, settings.model_alias, str(ref.version))
    return ref.uri


def bare_forward_ms(model: Any, image_size: int, repeats: int, batch: int = 1) -> dict[str, float]:
    """Milliseconds of ``predict_on_batch`` on ``batch`` resized images (after a warm-up)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, image_size, image_size, 3), np.uint8)
    model.predict_on_batch(images)  # traces the graph for this batch shape
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        model.predict_on_batch(images)
        times.append((time.perf_counter() - tick) * 1000)
    median = float(np.median(times))
    return {
        "batch": batch,
        "median_ms": median,
        "min_ms": min(times),
        "images_per_s": batch * 1000 / median,
        "repeats": repeats,
    }


def forward_pass_costs(
    model: Any, weights: Path, image_size: int, repeats: int, batch: int
) -> dict[str, Any]:
    """Bare forward passes: one image and a full micro-batch at the served size, one at 224.

    The full batch gives the model's own throughput ceiling on this machine, which no
    server can beat, and so how much batching can possibly gain here.
    """
    costs = {
        f"{image_size}px": bare_forward_ms(model, image_size, repeats),
        f"{image_size}px_batch{batch}": bare_forward_ms(
            model, image_size, max(3, repeats // 6), batch
        ),
    }
    if image_size != 224:
        big = vgg16_classifier(weights, 224)
        costs["224px"] = bare_forward_ms(big, 224, max(5, repeats // 3))
    log.info("bare forward pass: %s", costs)
    return costs


# --- the servers ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a server: this run's data home, nothing inherited that moves it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAGHUNTER_", "MLFLOW_"))}
    env.update(
        BAGHUNTER_HOME=str(settings.home),
        BAGHUNTER_STORE="embedded",
        TF_CPP_MIN_LOG_LEVEL="2",
        **extra,
    )
    return env


@contextlib.contextmanager
def running(server: Server, log_dir: Path, ready_timeout_s: float) -> Iterator[str]:
    """Start ``server``, wait until it answers ``/readyz`` with 200, yield its base URL."""
    log_path = log_dir / f"{server.label.replace(' ', '-').replace(':', '_')}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(server.argv, env=server.env, stdout=log_file, stderr=log_file)
        try:
            base = server.base_url
            deadline = time.monotonic() + ready_timeout_s
            while not _ready(base):
                if process.poll() is not None:
                    raise RuntimeError(f"{server.label} exited; see {log_path}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{server.label} not ready in {ready_timeout_s} s")
                time.sleep(0.5)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def batch_totals(base: str) -> tuple[float, float]:
    """(sum, count) of the service's batch-size histogram, read from ``/metrics``."""
    total, count = "baghunter_batch_size_sum", "baghunter_batch_size_count"
    values = {total: 0.0, count: 0.0}
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        name, _, value = line.partition(" ")
        if name in values:
            values[name] = float(value)
    return values[total], values[count]


# --- the load generator (runs in a second process) --------------------------------------


def generate_load(
    url: str, payloads: list[bytes], concurrency: int, warmup_s: float, duration_s: float
) -> dict[str, Any]:
    """Keep ``concurrency`` uploads in flight; score requests started after the warm-up."""
    return asyncio.run(_load(url, payloads, concurrency, warmup_s, duration_s))


async def _load(
    url: str, payloads: list[bytes], concurrency: int, warmup_s: float, duration_s: float
) -> dict[str, Any]:
    records: list[tuple[float, float, bool]] = []  # (start, end, ok), perf_counter seconds
    # The service reports its own time per request (upload read to response built): the rest
    # of the client's latency is HTTP, the event loop and this client.
    server_ms: list[tuple[float, float]] = []  # (start, latency_ms reported by the server)
    errors: list[str] = []
    start = time.perf_counter()
    window_start = start + warmup_s
    window_end = window_start + duration_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def worker(offset: int) -> None:
            i = offset
            while time.perf_counter() < window_end:
                body = payloads[i % len(payloads)]
                i += concurrency
                tick = time.perf_counter()
                try:
                    response = await client.post(
                        url, files={"file": ("photo.jpg", body, "image/jpeg")}
                    )
                    ok = response.status_code == 200
                    if ok and "latency_ms" in (answer := response.json()):
                        server_ms.append((tick, float(answer["latency_ms"])))
                    if not ok:
                        errors.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    ok = False
                    errors.append(f"{type(exc).__name__}: {exc}")
                records.append((tick, time.perf_counter(), ok))

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    scored = [(s, e, ok) for s, e, ok in records if window_start <= s < window_end]
    latencies_ms = np.array([(e - s) * 1000 for s, e, ok in scored if ok])
    completed = sum(1 for _, e, ok in records if ok and window_start <= e < window_end)
    result: dict[str, Any] = {
        "concurrency": concurrency,
        "window_s": duration_s,
        "requests": len(scored),
        "errors": sum(1 for *_, ok in scored if not ok),
        "first_errors": errors[:3],
        # Completions inside the window: requests still in flight at its edges do not count.
        "requests_per_s": completed / duration_s,
    }
    if latencies_ms.size:
        p50, p95, p99 = np.percentile(latencies_ms, [50, 95, 99])
        result.update(p50_ms=float(p50), p95_ms=float(p95), p99_ms=float(p99))
        result.update(mean_ms=float(latencies_ms.mean()), max_ms=float(latencies_ms.max()))
    reported = [ms for tick, ms in server_ms if window_start <= tick < window_end]
    if reported:
        result["server_reported_p50_ms"] = float(np.median(reported))
    return result


# --- the benchmark ----------------------------------------------------------------------


def photo_payloads(photos: Path | None, count: int, image_size: int) -> list[bytes]:
    """JPEG bodies to upload: real product photos when given, rendered sample bags if not."""
    if photos is not None:
        files = sorted(photos.glob("*.jpg"))[:count]
        if not files:
            raise SystemExit(f"no .jpg files in {photos}")
        return [f.read_bytes() for f in files]
    from baghunter.local.sample.catalog import BRANDS, render_bag

    return [render_bag(BRANDS[i % len(BRANDS)], seed=i, size=image_size) for i in range(count)]


def bench_server(
    server: Server,
    payloads: list[bytes],
    levels: list[int],
    args: argparse.Namespace,
    load_pool: concurrent.futures.Executor,
    log_dir: Path,
    model: Any,
) -> dict[str, Any]:
    """Every concurrency level against one server process.

    The bare forward pass is timed again just before the levels, with the server idle: the
    machine is shared and its speed drifts, so a server's single-request latency is only
    compared with a forward pass timed next to it.
    """
    results: dict[str, Any] = {"server": server.label, "levels": []}
    with running(server, log_dir, args.ready_timeout) as base:
        url = base + server.predict_path
        results["bare_forward"] = bare_forward_ms(model, args.image_size, args.forward_repeats)
        for concurrency in levels:
            before = batch_totals(base) if server.batches else None
            level = load_pool.submit(
                generate_load, url, payloads, concurrency, args.warmup, args.duration
            ).result()
            if before is not None:
                total, count = batch_totals(base)
                # Includes the warm-up's batches: same load, so the same batch sizes.
                level["mean_batch_size"] = (total - before[0]) / max(1.0, count - before[1])
            level["load_average"] = os.getloadavg()[0]
            log.info("%s c=%d: %s", server.label, concurrency, json.dumps(level))
            results["levels"].append(level)
    return results


def verdict(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The three targets, for the default service setting and the best one measured."""

    def at(run: dict[str, Any], concurrency: int) -> dict[str, Any]:
        return next(level for level in run["levels"] if level["concurrency"] == concurrency)

    naive = next(run for run in runs if run["server"] == "naive")
    services = [run for run in runs if run["server"].startswith("service")]
    top = max(level["concurrency"] for level in naive["levels"])
    out = {}
    for run in services:
        high, single = at(run, top), at(run, 1)
        bare = run["bare_forward"]["median_ms"]
        out[run["server"]] = {
            f"throughput_vs_naive_at_c{top}": high["requests_per_s"]
            / at(naive, top)["requests_per_s"],
            f"p99_ms_at_c{top}": high.get("p99_ms"),
            "c1_p50_vs_bare_forward": single["p50_ms"] / bare,
            "meets_3x": high["requests_per_s"] >= 3 * at(naive, top)["requests_per_s"],
            "meets_p99_under_2s": high.get("p99_ms", float("inf")) < 2000,
            "meets_single_within_20pct": single["p50_ms"] <= 1.2 * bare,
        }
    return out


def markdown(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| server | bare fwd ms | concurrency | req/s | p50 ms | p95 ms | p99 ms "
        "| server-side p50 ms | mean batch | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        bare = f"{run['bare_forward']['median_ms']:.0f}"
        for level in run["levels"]:
            latencies = " | ".join(
                f"{level.get(key, float('nan')):.0f}" for key in ("p50_ms", "p95_ms", "p99_ms")
            )
            server = level.get("server_reported_p50_ms")
            batch = level.get("mean_batch_size")
            lines.append(
                f"| {run['server']} | {bare} | {level['concurrency']} "
                f"| {level['requests_per_s']:.1f} | {latencies} "
                f"| {'—' if server is None else f'{server:.0f}'} "
                f"| {'—' if batch is None else f'{batch:.1f}'} | {level['errors']} |"
            )
    return "\n".join(lines)


def parse_batch(text: str) -> tuple[int, float]:
    size, _, wait = text.partition(":")
    return int(size), float(wait or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True, help="VGG16 no-top .weights.h5")
    parser.add_argument("--photos", type=Path, help="Folder of product .jpg photos to upload.")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument(
        "--batch",
        action="append",
        type=parse_batch,
        help="MAX_SIZE:MAX_WAIT_MS of a service run (repeatable; default: the settings' default)",
    )
    parser.add_argument("--levels", default="1,8,32", help="Concurrency levels.")
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds measured per level.")
    parser.add_argument("--warmup", type=float, default=3.0, help="Seconds of unscored load first.")
    parser.add_argument("--forward-repeats", type=int, default=30)
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/serve.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness poll
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    defaults = Settings()
    batches = args.batch or [(defaults.batch_max_size, defaults.batch_max_wait_ms)]
    levels = [int(v) for v in args.levels.split(",")]
    payloads = photo_payloads(args.photos, 64, args.image_size)

    with tempfile.TemporaryDirectory(prefix="baghunter-serve-bench-") as tmp:
        workdir = Path(tmp)
        settings = Settings(home=workdir / "home", store="embedded", mlflow_tracking_uri=None)
        uri = register_champion(settings, args.weights, args.image_size)
        # The registered model itself, loaded the way the servers load it.
        model = registry.load_classifier(uri).model
        forward = forward_pass_costs(
            model, args.weights, args.image_size, args.forward_repeats, batches[0][0]
        )

        servers = []
        for size, wait_ms in batches:
            port = free_port()
            env = server_env(
                settings,
                BAGHUNTER_SERVE_PORT=str(port),
                BAGHUNTER_BATCH_MAX_SIZE=str(size),
                BAGHUNTER_BATCH_MAX_WAIT_MS=str(wait_ms),
            )
            argv = [sys.executable, "-c", SERVICE_MAIN]
            base = f"http://127.0.0.1:{port}"
            label = f"service {size}:{wait_ms:g}"
            servers.append(Server(label, argv, env, base, "/v1/predict", batches=True))
        port = free_port()
        naive_argv = [sys.executable, str(NAIVE_APP), "--port", str(port)]
        base = f"http://127.0.0.1:{port}"
        servers.append(
            Server("naive", naive_argv, server_env(settings), base, "/predict", batches=False)
        )

        # Server logs outlive the temporary home: they explain a server that did not start.
        log_dir = args.out.parent / "serve-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        # spawn: a clean interpreter without this process's TensorFlow threads and state.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as load_pool:
            runs = [
                bench_server(server, payloads, levels, args, load_pool, log_dir, model)
                for server in servers
            ]

    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "image_size": args.image_size,
        "payloads": {"count": len(payloads), "real_photos": args.photos is not None},
        "bare_forward": forward,
        "runs": runs,
        "targets": verdict(runs),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print("bare forward pass: " + json.dumps(forward))
    print(markdown(runs))
    print("targets: " + json.dumps(report["targets"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
