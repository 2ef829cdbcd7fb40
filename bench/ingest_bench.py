"""Ingestion benchmark: each optimisation measured side by side with its baseline, one run.

1. Upserts: the store's bulk upsert (one round trip per batch) vs one write per product
   (the original approach: ``update_one`` per listing). Embedded store always; MongoDB too
   when ``--mongo-uri`` (or ``BAGHUNTER_BENCH_MONGO_URI``) is given.
2. Downloads: the concurrent downloader (pooled connections, validation, sha256, perceptual
   hash, content-addressed write) vs a sequential ``urllib`` loop that only saves the bytes
   (the original approach), both against the same image server on 127.0.0.1. Real CDNs
   answer in tens of milliseconds, so the server adds ``--latency-ms`` per image; a second
   pass with no latency shows the CPU-bound picture.

    python bench/ingest_bench.py [--products 20000] [--images 600] [--latency-ms 40]
                                 [--styles styles.csv --catalog-images images/]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from baghunter.catalog.schema import ImageTask, Product
from baghunter.config import Settings
from baghunter.images.cas import ContentStore
from baghunter.images.download import ImageDownloader
from baghunter.local.sample.catalog import BRANDS, render_bag
from baghunter.local.sample.server import Reply, RouteServer
from baghunter.store import EmbeddedStore, MongoStore


def make_products(n: int, source: str = "bench:catalog") -> list[Product]:
    return [
        Product(
            source=source,
            source_id=str(i),
            brand=BRANDS[i % len(BRANDS)].name,
            title=f"Bag {i}",
            category="Handbags",
            attributes={"colour": "Brown", "gender": "Women"},
            price=100.0 + i % 500,
            currency="EUR",
            image_urls=[f"https://cdn.example.com/{i}.jpg"],
            raw={"id": i},
        )
        for i in range(n)
    ]


def time_it(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_upserts(products: list[Product], store_factory, label: str, batch: int) -> dict:
    """Bulk vs per-product, each on a fresh store, same products."""
    now = datetime.now(UTC)
    results = {}
    with store_factory("bulk") as store:
        store.ensure_schema()
        seconds = time_it(
            lambda: [
                store.upsert_products(products[i : i + batch], now)
                for i in range(0, len(products), batch)
            ]
        )
        assert store.count_products() == len(products)
        results["bulk"] = {"seconds": seconds, "per_s": len(products) / seconds}
        # Re-ingesting the same catalog: the common case of a scheduled refresh.
        seconds = time_it(
            lambda: [
                store.upsert_products(products[i : i + batch], now)
                for i in range(0, len(products), batch)
            ]
        )
        results["bulk_rerun_unchanged"] = {"seconds": seconds, "per_s": len(products) / seconds}
    with store_factory("single") as store:
        store.ensure_schema()
        if isinstance(store, MongoStore):
            coll = store.products  # the original code: one update_one per listing

            def one_by_one() -> None:
                for p in products:
                    doc = p.to_document()
                    coll.update_one(
                        {"source": p.source, "source_id": p.source_id},
                        {"$set": {**doc, "last_seen": now}, "$setOnInsert": {"first_seen": now}},
                        upsert=True,
                    )
        else:

            def one_by_one() -> None:
                for p in products:  # one statement and one commit per listing
                    store.upsert_products([p], now)

        seconds = time_it(one_by_one)
        results["one_per_product"] = {"seconds": seconds, "per_s": len(products) / seconds}
    results["speedup"] = results["bulk"]["per_s"] / results["one_per_product"]["per_s"]
    print(f"[upsert/{label}] " + json.dumps(results))
    return results


def _serve_images(n: int, latency_s: float, ports: mp.Queue) -> None:
    server = RouteServer()
    for i in range(n):
        body = render_bag(BRANDS[i % len(BRANDS)], seed=i, size=256)
        server.routes[f"/img/{i}.jpg"] = Reply(
            200, body, content_type="image/jpeg", delay_s=latency_s
        )
    ports.put(server.port)
    server.serve_forever()


def image_server(n: int, latency_s: float) -> tuple[mp.Process, list[str]]:
    """The image server runs in its own process, as a CDN would: no GIL shared with the client."""
    ports: mp.Queue = mp.Queue()
    process = mp.Process(target=_serve_images, args=(n, latency_s, ports), daemon=True)
    process.start()
    port = ports.get(timeout=120)
    return process, [f"http://127.0.0.1:{port}/img/{i}.jpg" for i in range(n)]


def bench_downloads(n: int, latency_ms: float, concurrency: int, workdir: Path) -> dict:
    server, urls = image_server(n, latency_ms / 1000)
    try:
        out = workdir / f"sequential-{latency_ms}"
        out.mkdir(parents=True)

        def sequential() -> None:
            for i, url in enumerate(urls):  # the original: urlopen + write, one at a time
                with urllib.request.urlopen(url, timeout=30) as response:
                    (out / f"{i}.jpg").write_bytes(response.read())

        seq_s = time_it(sequential)
        settings = Settings(home=workdir / f"home-{latency_ms}", download_concurrency=concurrency)
        downloader = ImageDownloader(ContentStore(settings.images_dir), settings)
        results: list = []
        conc_s = time_it(
            lambda: results.extend(downloader.fetch_many([ImageTask(url=u) for u in urls]))
        )
        ok = sum(r.status == "ok" for r in results)
        assert ok == n, f"{n - ok} downloads failed"
    finally:
        server.terminate()
        server.join()
    report = {
        "images": n,
        "latency_ms": latency_ms,
        "sequential_urllib": {"seconds": seq_s, "per_s": n / seq_s},
        "concurrent": {"seconds": conc_s, "per_s": n / conc_s, "concurrency": concurrency},
        "speedup": seq_s / conc_s,
    }
    print("[download] " + json.dumps(report))
    return report


def bench_real_catalog(styles: Path, images: Path, workdir: Path) -> dict:
    """`baghunter ingest csv` twice on a fresh data home: the first run loads, the second
    must change nothing. Wall time and peak memory of each run (its own process)."""
    env = {
        **os.environ,
        "BAGHUNTER_HOME": str(workdir / "real-home"),
        "BAGHUNTER_STORE": "embedded",
    }
    command = [
        sys.executable,
        "-m",
        "baghunter",
        "ingest",
        "csv",
        str(styles),
        "--images",
        str(images),
        "--json",
    ]
    runs = {}
    for run in ("first", "second"):
        start = time.perf_counter()
        child = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        stdout = child.stdout.read() if child.stdout else b""
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        assert child.returncode == 0, f"ingest failed ({child.returncode})"
        summary = json.loads(stdout)
        runs[run] = {
            "seconds": time.perf_counter() - start,
            "peak_rss_mb": usage.ru_maxrss / 1024,
            "upsert": {
                k: summary["upsert"][k] for k in ("inserted", "updated", "unchanged", "rejected")
            },
            "images": {k: summary["images"][k] for k in ("attempted", "ok", "failed", "reasons")},
            "duplicate_groups": summary["duplicates"]["groups"],
        }
    print("[real catalog] " + json.dumps(runs))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--latency-ms", type=float, default=40.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--mongo-uri", default=os.environ.get("BAGHUNTER_BENCH_MONGO_URI"))
    parser.add_argument("--styles", type=Path, help="also load a real styles.csv catalog...")
    parser.add_argument("--catalog-images", type=Path, help="...with its folder of <id>.jpg")
    parser.add_argument("--out", type=Path, default=Path("bench/results/ingest.json"))
    args = parser.parse_args()

    products = make_products(args.products)
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "products": args.products,
    }
    with tempfile.TemporaryDirectory(prefix="baghunter-bench-") as tmp:
        workdir = Path(tmp)
        report["upsert_embedded"] = bench_upserts(
            products, lambda tag: EmbeddedStore(workdir / f"{tag}.sqlite"), "embedded", args.batch
        )
        if args.mongo_uri:

            def mongo_factory(tag: str) -> MongoStore:
                store = MongoStore.from_uri(args.mongo_uri, f"baghunter_bench_{tag}")
                store.products.drop()
                return store

            report["upsert_mongo"] = bench_upserts(products, mongo_factory, "mongo", args.batch)
        report["download"] = bench_downloads(
            args.images, args.latency_ms, args.concurrency, workdir
        )
        report["download_no_latency"] = bench_downloads(args.images, 0.0, args.concurrency, workdir)
        if args.styles and args.catalog_images:
            report["real_catalog"] = bench_real_catalog(args.styles, args.catalog_images, workdir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
