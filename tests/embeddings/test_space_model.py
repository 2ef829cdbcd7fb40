"""A vector space keeps the model that made it: rebuilt exactly, anywhere, with no download."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from baghunter.config import Settings
from baghunter.embeddings.model import (
    EMBEDDER_META,
    EMBEDDER_WEIGHTS,
    Embedder,
    EmbedderSpec,
    embedder_of_space,
    engine_file,
)
from baghunter.embeddings.pipeline import embed_catalog, vector_store
from baghunter.local.sample.catalog import BRANDS, render_bag
from baghunter.store import open_store

SPEC = EmbedderSpec(backbone="scratch", weights="none", image_size=32)
PHOTOS = [
    np.asarray(Image.open(io.BytesIO(render_bag(look, seed=3, size=40))).convert("RGB"))
    for look in BRANDS[:3]
]


def _space_in_a_busy_thread() -> str:
    """Build the untrained embedder where Keras' random state was already used up."""
    found: dict[str, str] = {}

    def build() -> None:
        keras.random.normal((3, 3))  # draws from this thread's global seed generator
        keras.layers.Dense(4).build((None, 4))
        found["space"] = Embedder(SPEC).space

    thread = threading.Thread(target=build)
    thread.start()
    thread.join()
    return found["space"]


def test_an_untrained_space_is_the_same_whatever_ran_before() -> None:
    first = Embedder(SPEC).space
    keras.utils.set_random_seed(7)
    keras.random.uniform((5,))
    assert Embedder(SPEC).space == first
    assert _space_in_a_busy_thread() == first


def test_saved_embedder_reloads_to_the_same_space_and_vectors(tmp_path: Path) -> None:
    embedder = Embedder(SPEC)
    embedder.save(tmp_path / "space")
    assert (tmp_path / "space" / EMBEDDER_META).is_file()
    assert (tmp_path / "space" / EMBEDDER_WEIGHTS).is_file()

    loaded = Embedder.load(tmp_path / "space")
    assert loaded.space == embedder.space
    assert loaded.spec == embedder.spec
    np.testing.assert_array_equal(loaded.embed_arrays(PHOTOS), embedder.embed_arrays(PHOTOS))


def test_a_damaged_stored_embedder_is_refused(tmp_path: Path) -> None:
    embedder = Embedder(SPEC)
    embedder.save(tmp_path / "space")
    kernel = embedder.model.weights[0]
    kernel.assign(kernel.numpy() * 1.5)  # same layers, other values
    embedder.model.save_weights(tmp_path / "space" / EMBEDDER_WEIGHTS)
    with pytest.raises(ValueError, match="damaged"):
        Embedder.load(tmp_path / "space")
    with pytest.raises(FileNotFoundError):
        Embedder.load(tmp_path / "nothing-here")


def test_embedding_a_catalog_stores_its_embedder_with_the_vectors(
    settings: Settings, tmp_path: Path, ingest_bags: Callable[..., None]
) -> None:
    ingest_bags(2, 2, size=48)
    with open_store(settings) as store:
        report = embed_catalog(store, settings, spec=SPEC)
    directory = vector_store(settings, report.space).directory
    assert (directory / EMBEDDER_META).is_file()

    # Configured for VGG16 with ImageNet weights (no download possible here), the space
    # is still served by its own model: nothing is built from these settings.
    elsewhere = settings.model_copy(update={"embed_backbone": "vgg16", "weights": "imagenet"})
    served = embedder_of_space(elsewhere, report.space)
    assert served.space == report.space
    shas, stored = vector_store(settings, report.space).load()
    assert len(shas) == report.computed == 4
    # ...and it embeds the catalog's photos to the very vectors stored for them.
    files = {p.stem: str(p) for p in settings.images_dir.rglob("*.*") if p.is_file()}
    again = served.embed_files([files[sha] for sha in shas])
    np.testing.assert_allclose(again, stored, rtol=1e-5, atol=1e-6)


def test_a_space_without_a_stored_model_is_served_only_by_a_matching_configuration(
    settings: Settings,
) -> None:
    embedder = Embedder(SPEC)  # nothing saved: an index from before embedders were kept
    matching = settings.model_copy(
        update={"embed_backbone": "scratch", "weights": "none", "embed_image_size": 32}
    )
    other = settings.model_copy(update={"embed_backbone": "vgg16", "weights": "imagenet"})
    with pytest.raises(ValueError, match="no embedding model is stored"):
        embedder_of_space(other, embedder.space)
    wrong_size = matching.model_copy(update={"embed_image_size": 48})
    with pytest.raises(ValueError, match="computes"):
        embedder_of_space(wrong_size, embedder.space)
    assert embedder_of_space(matching, embedder.space).space == embedder.space
    # Once served, the space keeps that model: the next look-up needs no configuration.
    assert (settings.features_dir / embedder.space / EMBEDDER_META).is_file()
    assert embedder_of_space(other, embedder.space).space == embedder.space


def test_an_engine_computes_its_own_space_and_keeps_its_file(
    settings: Settings, tmp_path: Path, ingest_bags: Callable[..., None]
) -> None:
    ingest_bags(2, 3, size=48)
    int8 = replace(SPEC, engine="onnx-int8")
    with open_store(settings) as store:
        on_keras = embed_catalog(store, settings, spec=SPEC)
        on_int8 = embed_catalog(store, settings, spec=int8)
        again = embed_catalog(store, settings, spec=int8)

    # Another space: its vectors are never mixed with Keras' ones, nor taken from them.
    assert on_int8.space == f"{on_keras.space}-onnx-int8"
    assert on_int8.computed == 6 and again.computed == 0
    directory = vector_store(settings, on_int8.space).directory
    assert (directory / engine_file("onnx-int8")).is_file()
    shas, quantized = vector_store(settings, on_int8.space).load()
    _, exact = vector_store(settings, on_keras.space).load(shas)
    cosine = np.sum(quantized * exact, 1) / (
        np.linalg.norm(quantized, axis=1) * np.linalg.norm(exact, axis=1)
    )
    assert cosine.min() > 0.98, cosine  # close to Keras' vectors, not equal to them
    assert not np.allclose(quantized, exact)

    # A query is embedded by the space's stored engine file: the stored vectors come back.
    served = embedder_of_space(settings, on_int8.space)
    files = {p.stem: str(p) for p in settings.images_dir.rglob("*.*") if p.is_file()}
    np.testing.assert_allclose(
        served.embed_files([files[sha] for sha in shas]), quantized, rtol=1e-4, atol=1e-5
    )


def test_an_int8_space_cannot_be_made_without_photos_to_calibrate_on(tmp_path: Path) -> None:
    embedder = Embedder(replace(SPEC, engine="onnx-int8"))
    with pytest.raises(ValueError, match="calibrate"):
        embedder.use_engine(tmp_path / "space")
    with pytest.raises(RuntimeError, match="use_engine"):
        embedder.embed_arrays(PHOTOS)
