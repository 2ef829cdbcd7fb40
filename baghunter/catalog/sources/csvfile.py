"""Catalog exports as CSV files, with their images in a folder beside them.

Two public catalog shapes are recognised by their header:

* **Fashion Product Images** (``styles.csv``): one row per product, image ``<id>.jpg``, the
  brand only inside ``productDisplayName`` (recovered with :class:`BrandExtractor`).
* **Shopee product matching** (``train.csv``): one row per posting, with the image file name,
  its perceptual hash and the group of postings that show the same product; no brand.

Rows become records keyed by the header, so a stored page can be normalized again later
without the file; only the brand model needs the whole file, and is built from it once.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from baghunter.catalog.schema import Product, clean_text
from baghunter.catalog.sources.base import Page, RecordError, SourceError, paginate
from baghunter.catalog.sources.brands import BrandExtractor
from baghunter.catalog.sources.fields import require_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CsvShape:
    """A known kind of export: the columns that identify it, its id and free-text column."""

    name: str
    columns: tuple[str, ...]
    id_column: str
    text_column: str


def fold_overflow(header: list[str], row: list[str], text_column: str) -> dict[str, str]:
    """Map a row to the header, folding surplus fields back into ``text_column``.

    Exports that do not quote their text split a title containing commas into several
    fields; since only the free-text column can hold commas, the surplus belongs to it.
    """
    extra = len(row) - len(header)
    if extra > 0:
        at = header.index(text_column)
        row = [*row[:at], ",".join(row[at : at + extra + 1]), *row[at + extra + 1 :]]
    # A short row (a truncated last line) keeps the columns it has.
    return dict(zip(header, row, strict=False))


FASHION = CsvShape(
    name="fashion-product-images",
    columns=(
        "id", "gender", "masterCategory", "subCategory", "articleType",
        "baseColour", "season", "year", "usage", "productDisplayName",
    ),
    id_column="id",
    text_column="productDisplayName",
)  # fmt: skip
SHOPEE = CsvShape(
    name="shopee",
    columns=("posting_id", "image", "image_phash", "title", "label_group"),
    id_column="posting_id",
    text_column="title",
)
SHAPES = (FASHION, SHOPEE)

# Fashion columns that describe the product and become attributes, as named in the file.
FASHION_ATTRIBUTES = (
    "gender", "masterCategory", "subCategory", "articleType",
    "baseColour", "season", "year", "usage",
)  # fmt: skip

SHOPEE_ATTRIBUTES = ("label_group", "image_phash")


class CsvSource:
    """A CSV catalog at ``path`` whose images are files in ``images_dir``.

    Image URIs are listed whether or not the file exists: the image stage records a missing
    file as a failed download with its reason, which is where operators look for it.
    """

    kind = "csv"

    def __init__(
        self,
        path: str | Path,
        images_dir: str | Path,
        *,
        name: str | None = None,
        page_size: int = 1000,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be positive, not {page_size}")
        self.path = Path(path).expanduser().resolve()
        self.images_dir = Path(images_dir).expanduser().resolve()
        self.name = name or f"csv:{self.path.stem}"
        self.page_size = page_size
        self._brands: BrandExtractor | None = None

    def pages(self, max_pages: int | None = None) -> Iterator[Page]:
        shape = self._shape()
        log.debug("%s: reading %s as a %s export", self.name, self.path, shape.name)
        if shape is FASHION:
            self._brand_extractor()  # one extra pass over the file, before the first page
        yield from paginate(self._records(shape.text_column), self.page_size, max_pages)

    def normalize(self, record: dict[str, Any]) -> Product:
        if SHOPEE.id_column in record:
            return self._normalize_shopee(record)
        return self._normalize_fashion(record)

    # --- reading -----------------------------------------------------------------------
    def _open(self) -> TextIO:
        try:
            # utf-8-sig: spreadsheet exports often start with a byte order mark.
            return self.path.open(newline="", encoding="utf-8-sig")
        except FileNotFoundError:
            raise SourceError(f"catalog file {self.path} does not exist") from None
        except OSError as exc:
            raise SourceError(f"cannot read catalog file {self.path}: {exc}") from exc

    def _shape(self) -> CsvShape:
        """The export's shape, from its header (extra or reordered columns are fine)."""
        with self._open() as handle:
            found = [column.strip() for column in next(csv.reader(handle), [])]
        for shape in SHAPES:
            if set(shape.columns) <= set(found):
                return shape
        expected = " or ".join(f"[{', '.join(shape.columns)}]" for shape in SHAPES)
        raise SourceError(
            f"{self.path}: unknown CSV header; found columns [{', '.join(found)}], "
            f"expected {expected}"
        )

    def _records(self, text_column: str) -> Iterator[dict[str, Any]]:
        with self._open() as handle:
            rows = csv.reader(handle)
            header = [column.strip() for column in next(rows, [])]
            for row in rows:
                if any(field.strip() for field in row):  # skip blank lines
                    yield fold_overflow(header, row, text_column)

    def _brand_extractor(self) -> BrandExtractor:
        # Built lazily: a stored page may be normalized in a process that never paged.
        if self._brands is None:
            records = self._records(FASHION.text_column)
            names = (record.get(FASHION.text_column, "") for record in records)
            self._brands = BrandExtractor(names)
            log.debug("%s: brand model built from %s", self.name, self.path)
        return self._brands

    def _image_uri(self, file_name: str) -> str:
        """The image's file URI, refused unless it lies inside ``images_dir``.

        The CSV is data: an ``image`` cell of ``../../etc/passwd``, an absolute path, or a
        symlink in the folder pointing out of it must not make ingestion read (and the
        service later serve) a file from elsewhere on the machine.
        """
        path = (self.images_dir / file_name).resolve()
        if not path.is_relative_to(self.images_dir):
            raise RecordError(
                f"image {file_name!r} lies outside the image folder {self.images_dir}"
            )
        return path.as_uri()

    # --- normalizing -------------------------------------------------------------------
    def _normalize_fashion(self, record: dict[str, Any]) -> Product:
        source_id = require_id(record, FASHION.id_column)
        title = clean_text(record.get("productDisplayName"))
        values = {column: clean_text(record.get(column)) for column in FASHION_ATTRIBUTES}
        values["year"] = _year(values["year"])
        return Product(
            source=self.name,
            source_id=source_id,
            brand=self._brand_extractor().brand(title) if title else None,
            title=title,
            category=record.get("articleType"),
            attributes=_present(values),
            image_urls=[self._image_uri(f"{source_id}.jpg")],
            raw=record,
        )

    def _normalize_shopee(self, record: dict[str, Any]) -> Product:
        source_id = require_id(record, SHOPEE.id_column)
        image = clean_text(record.get("image"))
        if image is None:
            raise RecordError(f"posting {source_id} has no image")
        return Product(
            source=self.name,
            source_id=source_id,
            title=record.get("title"),
            attributes=_present(
                {column: clean_text(record.get(column)) for column in SHOPEE_ATTRIBUTES}
            ),
            image_urls=[self._image_uri(image)],
            raw=record,
        )


def _present(values: dict[str, str | None]) -> dict[str, str]:
    """Only the attributes that have a value (empty CSV cells are not attributes)."""
    return {key: value for key, value in values.items() if value is not None}


def _year(text: str | None) -> str | None:
    """``"2011.0"`` (a float column written by pandas) back to ``"2011"``."""
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text
