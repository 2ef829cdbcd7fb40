"""Scoring a registered model on photos from anywhere: a labelled folder, or loose files.

``evaluate_folder`` is how a user checks a model on their own data (``FOLDER/<brand>/<image>``,
folder names matched case-insensitively to the model's classes); ``predict_files`` is the
command-line counterpart of the serving API.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from baghunter.training.metrics import evaluate_probabilities

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif"}


@dataclass
class FolderData:
    paths: list[Path]
    labels: list[int]
    skipped_brands: dict[str, int]  # folders whose name is not one of the model's classes


def scan_labelled_folder(folder: Path, classes: list[str]) -> FolderData:
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    index = {name.casefold(): i for i, name in enumerate(classes)}
    data = FolderData(paths=[], labels=[], skipped_brands={})
    for brand_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        images = sorted(
            p
            for p in brand_dir.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        label = index.get(brand_dir.name.strip().casefold())
        if label is None:
            data.skipped_brands[brand_dir.name] = len(images)
            continue
        data.paths.extend(images)
        data.labels.extend([label] * len(images))
    return data


def _read_images(paths: list[Path]) -> tuple[list[np.ndarray], list[int], dict[str, str]]:
    """Decode each file; unreadable ones are reported, not fatal."""
    from baghunter.images.validate import decode_rgb

    images, kept, errors = [], [], {}
    for i, path in enumerate(paths):
        try:
            images.append(np.asarray(decode_rgb(path.read_bytes()), dtype=np.uint8))
            kept.append(i)
        except Exception as exc:  # any undecodable file: report it, keep scoring the rest
            errors[str(path)] = f"{type(exc).__name__}: {exc}"
    return images, kept, errors


def evaluate_folder(model_uri: str, folder: Path, batch_size: int = 32) -> dict[str, Any]:
    from baghunter.inference import BrandPredictor

    predictor = BrandPredictor.load(model_uri)
    data = scan_labelled_folder(folder, predictor.classes)
    if not data.paths:
        raise ValueError(
            f"no images under {folder} in folders named after the model's classes "
            f"({', '.join(predictor.classes)})"
        )
    images, kept, errors = _read_images(data.paths)
    probs = predictor.probabilities(images, batch_size=batch_size)
    report = evaluate_probabilities([data.labels[i] for i in kept], probs, predictor.classes)
    return {
        "model": {"uri": model_uri, "name": predictor.name, "version": predictor.version},
        **report.to_dict(),
        "skipped_brands": data.skipped_brands,
        "unreadable": errors,
    }


def predict_files(model_uri: str, paths: list[Path], k: int = 3) -> list[dict[str, Any]]:
    """Each photo's answer (brand or none, top ``k``, open set), or why it was unreadable."""
    from baghunter.inference import BrandPredictor, prediction_dict

    predictor = BrandPredictor.load(model_uri)
    images, kept, errors = _read_images(paths)
    answers = dict(zip(kept, predictor.predict(images), strict=True))
    results: list[dict[str, Any]] = []
    for i, path in enumerate(paths):
        if i in answers:
            results.append({"image": str(path), **prediction_dict(predictor, answers[i], k)})
        else:
            results.append({"image": str(path), "error": errors[str(path)]})
    return results
