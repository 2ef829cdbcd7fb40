"""A folder of product photos sorted into one sub-folder per brand: ``<root>/<brand>/<image>``.

This is how hand-collected training sets are usually laid out (and what Keras'
``image_dataset_from_directory`` expects), so such a set can enter the catalog like any feed.
Records describe files, not their bytes; the image stage reads the files by their URI.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from baghunter.catalog.schema import Product, clean_text
from baghunter.catalog.sources.base import Page, RecordError, SourceError, paginate

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif"})


class FolderSource:
    """Every image directly inside a brand folder of ``path``, in sorted order.

    Hidden entries (``.DS_Store``, ``.thumbnails``...) and files of other types are skipped,
    as are files lying directly in ``path`` (they have no brand).
    """

    kind = "folder"

    def __init__(self, path: str | Path, *, name: str | None = None, page_size: int = 500):
        if page_size < 1:
            raise ValueError(f"page_size must be positive, not {page_size}")
        self.path = Path(path).expanduser().resolve()
        self.name = name or f"folder:{self.path.name}"
        self.page_size = page_size

    def pages(self, max_pages: int | None = None) -> Iterator[Page]:
        if not self.path.is_dir():
            raise SourceError(f"image folder {self.path} does not exist or is not a folder")
        yield from paginate(self._records(), self.page_size, max_pages)

    def _records(self) -> Iterator[dict[str, Any]]:
        """One record per image file, brand folders and files both in name order."""
        for brand_dir in sorted(_visible(self.path)):
            if not brand_dir.is_dir():
                continue
            if not brand_dir.resolve().is_relative_to(self.path):
                log.warning("skipping %s: a link out of %s", brand_dir, self.path)
                continue
            for file in sorted(_visible(brand_dir)):
                # Links are followed only while they stay inside the folder: one pointing
                # elsewhere on the machine must not turn into a catalog photo.
                target = file.resolve()
                if not target.is_relative_to(self.path):
                    log.warning("skipping %s: a link out of %s", file, self.path)
                elif target.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                    yield {"folder": brand_dir.name, "file": file.name, "uri": file.as_uri()}
                else:
                    log.debug("skipping %s: not an image file", file)

    def normalize(self, record: dict[str, Any]) -> Product:
        folder, file, uri = record.get("folder"), record.get("file"), record.get("uri")
        if not (isinstance(folder, str) and isinstance(file, str) and isinstance(uri, str)):
            raise RecordError(f"folder record needs 'folder', 'file' and 'uri': {record!r}")
        return Product(
            source=self.name,
            source_id=f"{folder}/{file}",
            # The folder name is the label someone chose; keep its spelling (only the
            # whitespace is collapsed, by the schema) so labels match the folders.
            brand=clean_text(folder),
            title=Path(file).stem,
            image_urls=[uri],
            raw=record,
        )


def _visible(folder: Path) -> Iterator[Path]:
    return (entry for entry in folder.iterdir() if not entry.name.startswith("."))
