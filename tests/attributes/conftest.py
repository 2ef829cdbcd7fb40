"""Fixtures for the attribute tests: a generated styles.csv catalog, and stores built from it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from baghunter.catalog.schema import ImageResult, ImageStatus, Product
from baghunter.local.sample.styles import write_styles_catalog

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def styles_catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 260-product styles.csv with 48 px photos (written once per session)."""
    return write_styles_catalog(tmp_path_factory.mktemp("styles"), 260, seed=5, image_size=48)


def listing(
    source_id: str, images: list[str], category: str | None = None, **attributes: str
) -> Product:
    """A product of the test source with photos ``images`` (content keys)."""
    return Product(
        source="test",
        source_id=source_id,
        attributes=attributes,
        category=category,
        image_urls=[f"https://cdn.test/{image}.jpg" for image in images],
    )


def stored_photo(image: str, phash: str = "0" * 64) -> ImageResult:
    """A downloaded photo whose sha256 is derived from ``image`` (no file needed)."""
    digest = (image.encode().hex() + "0" * 64)[:64]
    return ImageResult(
        url=f"https://cdn.test/{image}.jpg",
        status=ImageStatus.OK,
        sha256=digest,
        path=f"{digest[:2]}/{digest}.jpg",
        content_type="image/jpeg",
        bytes=100,
        width=48,
        height=48,
        phash=phash,
        fetched_at=NOW,
    )
