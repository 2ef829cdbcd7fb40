"""The brand classifier: raw pixels in, class probabilities out.

The exported model does everything between a decoded photo and the probabilities (resize,
augmentation during training only, the backbone's preprocessing), so a served model cannot
drift from the one that was trained and scored. Its parts are exposed separately because
training uses them on their own: phase 1 trains ``head`` on pooled features cached from
``feature_extractor``, and since those are the same layer objects as in the full model, the
trained head weights are already in place when the full model is fine-tuned or saved.

Model code uses only ``keras.layers``/``keras.ops`` so it runs on any Keras backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
from keras import layers

from baghunter.training.backbones import build_backbone, preprocess_layer
from baghunter.training.data import RESIZE_ANTIALIAS, RESIZE_INTERPOLATION


@dataclass(frozen=True)
class ClassifierParts:
    """Sub-models sharing their layers (and so their weights) with the full model."""

    backbone_name: str
    image_size: int
    backbone: keras.Model  # preprocessed square pixels -> feature maps
    head: keras.Model  # pooled feature vector -> class probabilities
    feature_extractor: keras.Model  # raw uint8 images -> pooled features, no augmentation


def augmentation_block() -> keras.Sequential:
    """Mild photometric/geometric jitter, active only when the model runs in training mode.

    Product shots are centred and upright, so rotation and zoom stay small; horizontal flips
    are safe because the classifier must not rely on reading the logo's text direction.
    Applied to ``[0, 255]`` pixels, before preprocessing, because ``RandomContrast`` clips
    to its value range (which mean-subtracted pixels would violate).
    """
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal"),
            layers.RandomRotation(0.05),
            layers.RandomZoom(0.1),
            layers.RandomContrast(0.1),
        ],
        name="augmentation",
    )


def classification_head(
    feature_dim: int, num_classes: int, dense_units: Sequence[int], dropout: float
) -> keras.Model:
    """The original study's dense stack: ReLU layers with dropout, then a softmax."""
    features = keras.Input(shape=(feature_dim,), name="features")
    x = features
    for i, units in enumerate(dense_units, start=1):
        x = layers.Dense(units, activation="relu", name=f"dense{i}")(x)
        x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    # float32 output even under mixed precision: a float16 softmax can round to exactly
    # 0 or 1, which breaks the cross-entropy and the confidence shown to users.
    probs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(features, probs, name="head")


def build_classifier(
    backbone_name: str,
    weights: str,
    num_classes: int,
    image_size: int,
    *,
    dense_units: Sequence[int] = (256, 128),
    dropout: float = 0.3,
    augment: bool = True,
) -> tuple[keras.Model, ClassifierParts]:
    """Build the full classifier for raw ``uint8`` images of any size, and its parts."""
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    backbone = build_backbone(backbone_name, weights, image_size)
    resize = layers.Resizing(
        image_size,
        image_size,
        interpolation=RESIZE_INTERPOLATION,
        antialias=RESIZE_ANTIALIAS,
        name="resize",
    )
    preprocess = preprocess_layer(backbone_name)
    pool = layers.GlobalAveragePooling2D(name="pool")
    head = classification_head(backbone.output_shape[-1], num_classes, dense_units, dropout)

    images = keras.Input(shape=(None, None, 3), dtype="uint8", name="image")
    pixels = resize(images)
    # The extractor is the same chain without augmentation: identical at inference, and
    # phase 1 caches its outputs, which must not depend on random jitter.
    features = pool(backbone(preprocess(pixels)))
    feature_extractor = keras.Model(images, features, name="feature_extractor")

    if augment:
        features = pool(backbone(preprocess(augmentation_block()(pixels))))
    probs = head(features)
    model = keras.Model(images, probs, name=f"bag_classifier_{backbone_name}")

    parts = ClassifierParts(
        backbone_name=backbone_name,
        image_size=image_size,
        backbone=backbone,
        head=head,
        feature_extractor=feature_extractor,
    )
    return model, parts
