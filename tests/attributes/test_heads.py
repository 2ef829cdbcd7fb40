"""The multi-output head: a masked loss that silences only the head without a label."""

from __future__ import annotations

import numpy as np
import pytest

from baghunter.attributes.heads import (
    HeadConfig,
    MaskedSparseCrossentropy,
    build_heads,
    class_weights,
    fit_heads,
    output_keys,
    predict_heads,
)

keras = pytest.importorskip("keras")


def test_masked_loss_is_the_mean_over_labelled_rows_only() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.3, 0.7]], np.float32)
    labels = np.array([0, 0, -1, -1])
    loss = float(MaskedSparseCrossentropy()(labels, probs))
    assert loss == pytest.approx(-(np.log(0.9) + np.log(0.2)) / 2, rel=1e-5)
    assert float(MaskedSparseCrossentropy()(np.array([-1, -1]), probs[:2])) == 0.0
    weighted = float(MaskedSparseCrossentropy([1.0, 3.0])(np.array([1, -1]), probs[:2]))
    assert weighted == pytest.approx(-3 * np.log(0.1), rel=1e-5)


def test_a_head_without_labels_on_half_the_rows_does_not_stop_the_others() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 8)).astype(np.float32)
    colour = (x[:, 0] > 0).astype(np.int32)  # head "colour" reads feature 0
    shape = (x[:, 1] > 0).astype(np.int32)  # head "shape" reads feature 1
    colour_labels = np.where(rng.random(600) < 0.5, -1, colour)  # half unlabelled
    attributes = {"colour": ["dark", "light"], "shape": ["round", "square"]}
    train = (x[:400], {"colour": colour_labels[:400], "shape": shape[:400]})
    val = (x[400:500], {"colour": colour_labels[400:500], "shape": shape[400:500]})
    config = HeadConfig(hidden=32, epochs=15, learning_rate=1e-2, seed=1)
    heads, history = fit_heads(train, val, attributes, config)

    probs = predict_heads(heads, x[500:], attributes)
    assert {k: v.shape for k, v in probs.items()} == {"colour": (100, 2), "shape": (100, 2)}
    np.testing.assert_allclose(probs["colour"].sum(axis=1), 1.0, rtol=1e-5)
    assert np.mean(probs["shape"].argmax(1) == shape[500:]) > 0.85
    assert np.mean(probs["colour"].argmax(1) == colour[500:]) > 0.85
    assert {"loss", "val_loss", "val_colour_accuracy", "val_shape_accuracy"} <= set(history)


def test_a_head_with_no_labels_gets_no_gradient_while_the_other_trains() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    labels = {"a": (x[:, 0] > 0).astype(np.int32), "b": np.full(200, -1, np.int32)}
    attributes = {"a": ["no", "yes"], "b": ["x", "y", "z"]}
    config = HeadConfig(hidden=8, epochs=3, seed=4)
    keras.utils.set_random_seed(config.seed)  # what fit_heads does before building
    initial = build_heads(4, attributes, config, x)

    heads, _ = fit_heads((x, labels), (x, labels), attributes, config)

    for name, changed in (("a", True), ("b", False)):
        before = initial.get_layer(name).get_weights()[0]
        after = heads.get_layer(name).get_weights()[0]
        assert (not np.allclose(before, after)) is changed, name


def test_attribute_names_become_safe_distinct_outputs() -> None:
    assert output_keys(["base Colour", "articleType"]) == {
        "base Colour": "base_Colour",
        "articleType": "articleType",
    }
    with pytest.raises(ValueError, match="collide"):
        output_keys(["a b", "a_b"])


def test_class_weights_favour_rare_classes_and_ignore_missing_labels() -> None:
    weights = class_weights(np.array([0, 0, 0, 1, -1, -1]), 3)
    assert weights[1] > weights[0]
    assert weights[2] == 1.0  # absent class: neutral
    assert max(class_weights(np.array([0] * 1000 + [1]), 2)) == 10.0  # capped


def test_compiled_heads_reload_with_their_loss_and_metric(tmp_path) -> None:
    """A model saved while compiled (a checkpoint) loads again, loss and metric included."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    labels = {"a": (x[:, 0] > 0).astype(np.int32)}
    attributes = {"a": ["no", "yes"]}
    heads, _ = fit_heads((x, labels), (x, labels), attributes, HeadConfig(hidden=8, epochs=2))
    path = tmp_path / "heads.keras"
    heads.save(path)

    reloaded = keras.models.load_model(path)  # compile=True: the custom loss must resolve

    assert reloaded.compiled
    np.testing.assert_allclose(
        predict_heads(reloaded, x, attributes)["a"], predict_heads(heads, x, attributes)["a"]
    )
