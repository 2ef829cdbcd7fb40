"""The one inference path: files and in-memory photos alike, scoring, top-k, the open set."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from PIL import Image

from baghunter.dataset.manifest import Manifest
from baghunter.embeddings.model import Embedder, EmbedderSpec
from baghunter.inference import BrandPredictor, model_image_size
from baghunter.training.data import load_images
from baghunter.training.model import build_classifier, classification_head
from baghunter.training.open_set import OpenSetGate

IMAGE_SIZE = 32
CLASSES = ["amber", "cobalt", "jade"]


@pytest.fixture(scope="module")
def model() -> keras.Model:
    embedder = Embedder(EmbedderSpec("scratch", "none", IMAGE_SIZE))
    keras.utils.set_random_seed(0)
    head = classification_head(sum(embedder.block_dims), len(CLASSES), ())
    model, _, _ = build_classifier(embedder, head, pool_depth=3, augment=False)
    return model


@pytest.fixture(scope="module")
def predictor(model: keras.Model) -> BrandPredictor:
    return BrandPredictor(model, CLASSES)


def test_files_and_in_memory_photos_get_the_same_scores(
    predictor: BrandPredictor, synthetic_manifest: Manifest
) -> None:
    # PNG only: PIL and TensorFlow decode JPEG with different IDCTs (pixels differ by 1-2
    # levels), while PNG is lossless, so any difference would be the pipelines' own.
    entries = [e for e in synthetic_manifest.split("test") if e.path.endswith(".png")][:7]
    from_files = predictor.file_probabilities([e.path for e in entries], batch_size=4)
    photos = [np.asarray(Image.open(e.path).convert("RGB")) for e in entries]
    in_memory = predictor.probabilities(photos, batch_size=4)

    assert from_files.shape == (len(entries), 3) and len(entries) >= 4
    np.testing.assert_allclose(from_files, in_memory, atol=1e-5)
    # A 4-d batch of already-resized images is accepted as well.
    stacked = predictor.probabilities(load_images([e.path for e in entries], IMAGE_SIZE))
    np.testing.assert_allclose(stacked, in_memory, atol=1e-5)
    answers = predictor.predict(photos)
    np.testing.assert_allclose(np.stack([a.probs for a in answers]), in_memory, atol=1e-6)
    # Without a gate every photo is answered with its top brand.
    assert all(a.open_set is None and a.known for a in answers)
    assert [predictor.brand(a) for a in answers] == [CLASSES[int(r.argmax())] for r in in_memory]


def test_evaluate_scores_against_the_entry_labels(
    predictor: BrandPredictor, synthetic_manifest: Manifest
) -> None:
    entries = synthetic_manifest.split("test")
    probs = predictor.file_probabilities([e.path for e in entries])
    report = predictor.evaluate(entries)
    labels = np.array([CLASSES.index(e.label) for e in entries])
    assert report.n == len(entries)
    assert report.accuracy == pytest.approx(float(np.mean(probs.argmax(axis=1) == labels)))
    assert np.sum(report.confusion_matrix) == len(entries)


def test_the_gate_answers_none_for_photos_far_from_every_brand(model: keras.Model) -> None:
    # A gate whose references are plain fields of three colour families, labelled as the
    # model predicts them: photos of those families are known, random noise is not.
    rng = np.random.default_rng(3)
    bases = np.array([(200, 40, 40), (40, 190, 60), (40, 60, 210)])
    colours = [
        np.full((40, 40, 3), np.clip(bases[i % 3] + rng.integers(-25, 26, 3), 0, 255), np.uint8)
        for i in range(30)
    ]
    features_of = keras.Model(model.inputs, model.get_layer("pooled").output)
    features = np.asarray(features_of.predict(np.stack(colours)[:, :32, :32], verbose=0))
    predicted = BrandPredictor(model, CLASSES).probabilities(colours).argmax(axis=1)
    gate = OpenSetGate.fit(features[:21], predicted[:21], features[21:], predicted[21:], accept=0.9)
    gated = BrandPredictor(model, CLASSES, gate=gate)

    noise = [rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8) for _ in range(4)]
    answers = gated.predict(noise + colours[21:])
    for answer in answers:
        assert answer.open_set is not None
        assert 0.0 <= answer.open_set.score <= 1.0
        assert answer.open_set.threshold == gate.threshold
    assert [gated.brand(a) for a in answers[:4]] == [None] * 4
    assert sum(a.known for a in answers[4:]) >= 8  # 9 of 9 known ones, less one at most


def test_model_image_size_is_read_from_the_model(model: keras.Model) -> None:
    assert model_image_size(model) == IMAGE_SIZE


def test_non_uint8_or_non_rgb_images_are_refused(predictor: BrandPredictor) -> None:
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict([np.zeros((10, 10, 3), dtype=np.float32)])
    with pytest.raises(ValueError, match=r"\(10, 10\)"):
        predictor.probabilities([np.zeros((10, 10), dtype=np.uint8)])


def test_no_images_give_an_empty_result(predictor: BrandPredictor) -> None:
    assert predictor.probabilities([]).shape == (0, 3)
    assert predictor.file_probabilities([]).shape == (0, 3)
    assert predictor.predict([]) == [] and predictor.predict_files([]) == []


def test_top_k_orders_classes_by_probability(model: keras.Model) -> None:
    predictor = BrandPredictor(model, CLASSES)
    row = np.array([0.1, 0.6, 0.3])
    assert predictor.top_k(row, 2) == [("cobalt", 0.6), ("jade", 0.3)]
    assert predictor.top_k(np.array([0.2, 1.0000001, 0.0]), 1) == [("cobalt", 1.0)]
