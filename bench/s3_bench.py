"""Photos on S3 vs on local disk: ingest and embedding throughput, one run, real photos.

The same real catalog photos (a ``<group>/<photo>.jpg`` folder made from the Fashion
Product Images sample) are ingested with ``baghunter ingest folder`` and embedded with
``baghunter embed`` twice, each into a fresh data home: once with the photos in the home's
folder, once in a bucket of moto's S3 server on 127.0.0.1 (``BAGHUNTER_IMAGES_URI``).
moto is an emulator in one Python process, not S3: the comparison shows what the object
store path costs in this code (fsspec reads, one PUT per photo), not a cloud's latency.

    python bench/s3_bench.py --photos IMAGES_DIR --styles styles.csv \\
        --weights vgg16_notop.weights.h5 [--count 1000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the scale tier's server helpers start moto

from tests.scale.servers import s3  # noqa: E402

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="folder of <id>.jpg")
    parser.add_argument("--styles", type=Path, required=True, help="styles.csv (groups)")
    parser.add_argument("--weights", required=True, help="VGG16 no-top .weights.h5")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/s3.json"))
    args = parser.parse_args()

    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="s3-bench-") as tmp:
        folder = _catalog_folder(args.photos, args.styles, args.count, Path(tmp) / "catalog")
        report["photos"] = sum(1 for _ in folder.rglob("*.jpg"))
        with s3(Path(tmp) / "moto") as endpoint:
            import boto3

            aws = {**FAKE_AWS, "AWS_ENDPOINT_URL": endpoint}
            boto3.client("s3", endpoint_url=endpoint, **_boto(aws)).create_bucket(Bucket="bench")
            for where, images_uri in (("local disk", None), ("S3 (moto)", "s3://bench/photos")):
                env = {
                    **os.environ,
                    **aws,
                    "BAGHUNTER_HOME": str(Path(tmp) / where.split()[0]),
                    "BAGHUNTER_STORE": "embedded",
                    "BAGHUNTER_WEIGHTS": str(Path(args.weights).resolve()),
                }
                if images_uri:
                    env["BAGHUNTER_IMAGES_URI"] = images_uri
                ingest, ingest_s = _run(env, "ingest", "folder", str(folder), "--json")
                embed, embed_s = _run(env, "embed", "--json")
                ok = ingest["images"]["ok"]
                row = {
                    "where": where,
                    "ingest_s": ingest_s,
                    "ingest_images_per_s": ok / ingest_s,
                    "images_ok": ok,
                    "embed_s": embed_s,
                    "embed_images_per_s": embed["computed"] / embed_s,
                    "embedded": embed["computed"],
                }
                report["runs"].append(row)
                print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


def _catalog_folder(photos: Path, styles: Path, count: int, out: Path) -> Path:
    """``count`` photos copied as ``<articleType>/<id>.jpg`` (the folder source's layout)."""
    with styles.open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if (photos / f"{r['id']}.jpg").is_file()]
    for row in rows[:count]:
        group = out / row["articleType"].replace("/", "-")
        group.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photos / f"{row['id']}.jpg", group / f"{row['id']}.jpg")
    return out


def _run(env: dict[str, str], *args: str) -> tuple[dict[str, Any], float]:
    """A ``baghunter`` command's JSON and its wall time (the process start included)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "baghunter", *args], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"baghunter {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout[done.stdout.index("{") :]), wall


def _boto(aws: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": aws["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": aws["AWS_SECRET_ACCESS_KEY"],
        "region_name": aws["AWS_DEFAULT_REGION"],
    }


if __name__ == "__main__":
    main()
