"""Fixtures for similar search and near-duplicates: a scratch embedder, its settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from baghunter.config import Settings, get_settings
from baghunter.embeddings.model import Embedder, EmbedderSpec

# A randomly initialised CNN is a fixed, deterministic function of the pixels, and copies
# of one photo share their pixels: its pooled features find copies well enough to test
# the grouping logic, build in a second and need no weights file. Semantic quality (VGG16
# features on real photos) is measured by the benchmarks instead.
SCRATCH = EmbedderSpec(backbone="scratch", weights="none", image_size=32)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder(SCRATCH)


@pytest.fixture
def scratch_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The isolated test settings, embedding with the scratch backbone."""
    monkeypatch.setenv("BAGHUNTER_EMBED_BACKBONE", SCRATCH.backbone)
    monkeypatch.setenv("BAGHUNTER_WEIGHTS", SCRATCH.weights)
    monkeypatch.setenv("BAGHUNTER_EMBED_IMAGE_SIZE", str(SCRATCH.image_size))
    # An untrained CNN's pooled ReLU features all point one way (raw cosine > 0.99 between
    # unrelated bags); only after subtracting their mean do cosines tell photos apart.
    monkeypatch.setenv("BAGHUNTER_SIMILAR_CENTER", "true")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
