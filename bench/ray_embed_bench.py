"""Embedding stage on Ray Data vs the single-process stage, one run, real catalog photos.

The same photos are embedded into fresh vector stores three ways: the single-process
stage (``embed_missing``), and Ray Data (``embed_missing_on_ray``) on a local Ray with 1
and with 2 actors. Ray is started once beforehand (its start-up is reported apart); the
vectors of every run are compared with the single-process ones.

    python bench/ray_embed_bench.py --photos IMAGES_DIR --weights vgg16_notop.weights.h5 \\
        [--count 1024] [--image-size 64]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from baghunter.config import Settings

log = logging.getLogger("ray_embed_bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="a folder of .jpg photos")
    parser.add_argument("--weights", required=True, help="VGG16 no-top .weights.h5")
    parser.add_argument("--count", type=int, default=1024)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("bench/results/ray-embed.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import ray

    from baghunter.embeddings.distributed import LOCAL, embed_missing_on_ray, init_options
    from baghunter.embeddings.model import Embedder, EmbedderSpec
    from baghunter.embeddings.pipeline import embed_missing, vector_store

    files = sorted(args.photos.rglob("*.jpg"))[: args.count]
    paths = {hashlib.sha256(f.read_bytes()).hexdigest(): str(f) for f in files}
    spec = EmbedderSpec("vgg16", str(Path(args.weights).resolve()), args.image_size)
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "photos": len(paths),
        "image_size": args.image_size,
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="ray-embed-bench-") as tmp:

        def fresh(name: str) -> Settings:
            return Settings(
                _env_file=None,  # type: ignore[call-arg]
                home=Path(tmp) / name,
                store="embedded",
                embed_batch_size=64,
            )

        single = fresh("single")
        embedder = Embedder(spec)
        started = time.perf_counter()
        embed_missing(embedder, single, paths)
        wall = time.perf_counter() - started
        shas, reference = vector_store(single, embedder.space).load()
        report["runs"].append(
            {"how": "single process", "wall_s": wall, "images_per_s": len(paths) / wall}
        )
        log.info("single process: %.1f images/s", len(paths) / wall)

        tick = time.perf_counter()
        ray.init(**init_options(LOCAL))
        report["ray_start_s"] = time.perf_counter() - tick
        try:
            for actors in (1, 2):
                settings = fresh(f"ray-{actors}")
                started = time.perf_counter()
                embed_missing_on_ray(Embedder(spec), settings, paths, actors=actors)
                wall = time.perf_counter() - started
                _, vectors = vector_store(settings, embedder.space).load(shas)
                report["runs"].append(
                    {
                        "how": f"Ray Data, {actors} actor(s)",
                        "wall_s": wall,
                        "images_per_s": len(paths) / wall,
                        "max_abs_diff_vs_single": float(np.abs(vectors - reference).max()),
                    }
                )
                log.info("ray %d actors: %.1f images/s", actors, len(paths) / wall)
        finally:
            ray.shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
