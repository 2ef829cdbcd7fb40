"""Score an attribute model on any catalog CSV of the ``styles.csv`` shape.

``baghunter attributes evaluate`` and the real-data benchmark both come through here, so
the figures in docs/benchmarks.md are the ones the command prints. Rows are matched to
photos as ``<images>/<id>.jpg``. A row whose photo is missing or cannot be decoded is
skipped and counted, never a crash; a true value the model has no class for is counted
against the attribute's ``coverage`` (and reported as ``out_of_vocabulary``) rather than
scored as an error the model could not have avoided.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from baghunter.attributes.model import AttributeModel, load_attribute_model
from baghunter.attributes.report import score_all
from baghunter.catalog.schema import clean_text
from baghunter.catalog.sources.csvfile import FASHION, fold_overflow

log = logging.getLogger(__name__)

BATCH = 256


class CsvError(ValueError):
    """The CSV cannot be scored at all (unreadable, no id column, no attribute columns)."""


def _read_rows(csv_path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [column.strip() for column in next(reader, [])]
            rows = [
                fold_overflow(header, row, FASHION.text_column)
                for row in reader
                if any(cell.strip() for cell in row)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CsvError(f"cannot read {csv_path}: {exc}") from exc
    if FASHION.id_column not in header:
        raise CsvError(f"{csv_path} has no {FASHION.id_column!r} column (header: {header})")
    return header, rows


def _value(row: dict[str, str], column: str) -> str | None:
    """The cell as ingestion would store it (whitespace collapsed, ``2011.0`` -> ``2011``)."""
    value = clean_text(row.get(column))
    if value is not None and column == "year":
        try:
            number = float(value)
            value = str(int(number)) if number.is_integer() else value
        except ValueError:
            pass
    return value


def _decode(path: Path) -> np.ndarray | None:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None


def evaluate_csv(
    model_uri: str,
    csv_path: str | Path,
    images_dir: str | Path,
    *,
    model: AttributeModel | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Per-attribute accuracy, macro-F1 and majority baseline of the model on the CSV.

    Attribute keys are the model's attribute names, which for ``styles.csv``-trained
    models are the CSV's column names. Pass ``model`` to reuse a loaded one.
    """
    csv_path, images_dir = Path(csv_path), Path(images_dir)
    header, rows = _read_rows(csv_path)
    model = model or load_attribute_model(model_uri)
    scored_attributes = {k: v for k, v in model.attributes.items() if k in header}
    if not scored_attributes:
        raise CsvError(
            f"{csv_path} has none of the model's attributes {sorted(model.attributes)} "
            f"as a column (header: {header})"
        )
    values: dict[str, list[str | None]] = {name: [] for name in scored_attributes}
    probs: dict[str, list[np.ndarray]] = {name: [] for name in scored_attributes}
    missing = unreadable = 0
    pending: list[tuple[dict[str, str], np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        predicted = model.predict_images([image for _, image in pending])
        for name in scored_attributes:
            probs[name].append(predicted[name])
            values[name].extend(_value(row, name) for row, _ in pending)
        pending.clear()

    for i, row in enumerate(rows):
        path = images_dir / f"{(row.get(FASHION.id_column) or '').strip()}.jpg"
        if not path.is_file():
            missing += 1
        elif (image := _decode(path)) is None:
            unreadable += 1
        else:
            pending.append((row, image))
        if len(pending) >= BATCH:
            flush()
        if progress is not None and (i + 1) % BATCH == 0:
            progress(i + 1, len(rows))
    flush()
    if progress is not None:
        progress(len(rows), len(rows))
    scored = len(rows) - missing - unreadable
    log.info("%s: %d rows, %d scored, %d missing, %d unreadable photos", csv_path, len(rows),
             scored, missing, unreadable)  # fmt: skip
    result: dict[str, Any] = {
        "model": {
            "uri": model_uri,
            "name": model.name,
            "version": model.version,
            "space": model.space,
            "image_size": model.image_size,
        },
        "rows": len(rows),
        "images": {"scored": scored, "missing": missing, "unreadable": unreadable},
        "attributes": {},
        "not_in_csv": sorted(set(model.attributes) - set(scored_attributes)),
        "notes": (
            "coverage = scored rows / rows with a value; rows whose value the model has no "
            "class for are out_of_vocabulary and not scored; majority_baseline always "
            "answers the model's training-majority class"
        ),
    }
    if scored == 0:
        return result
    report = score_all(
        values,
        {name: np.concatenate(parts) for name, parts in probs.items()},
        scored_attributes,
        model.majority,
    )
    result["attributes"] = {name: s.summary() for name, s in report.attributes.items()}
    result["mean_macro_f1"] = report.mean_macro_f1
    return result
