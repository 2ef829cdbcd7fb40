"""The brand classifier: raw pixels in, class probabilities out, built on an embedder.

The classifier is the shared embedding model (resize, the backbone's preprocessing, the
backbone, average pooling of its last conv blocks) with a trained head on top, so its
frozen features *are* the vectors stored for the catalog: the head is trained on those
vectors, and the exported model does everything between a decoded photo and the
probabilities, so a served model cannot drift from the one that was trained and scored.

``pool_depth`` chooses how many of the embedder's pooled blocks the head reads (1: the
last block; 3: the last three, the stored vector whole). The layer producing the head's
input is named :data:`FEATURES_LAYER`: inference reads it for the open-set score.

Model code uses only ``keras.layers``/``keras.ops`` so it runs on any Keras backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import keras
import numpy as np
from keras import layers

from baghunter.training.backbones import preprocess_layer
from baghunter.training.data import RESIZE_ANTIALIAS, RESIZE_INTERPOLATION

if TYPE_CHECKING:
    from baghunter.embeddings.model import Embedder

# The layer whose output is the head's input (pooled features): the open-set score and
# the feature slices of stored vectors refer to it by this name.
FEATURES_LAYER = "pooled"


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
    feature_dim: int,
    num_classes: int,
    dense_units: Sequence[int] = (),
    dropout: float = 0.3,
    l2: float = 0.0,
    statistics: tuple[np.ndarray, np.ndarray] | None = None,
) -> keras.Model:
    """Standardisation, dense ReLU layers with dropout (none: a linear softmax), the softmax.

    ``statistics`` (:func:`feature_statistics` of the training vectors) standardise the
    input; without them it passes unchanged. L2 on every kernel: with a few hundred photos
    per brand and a 1,280-wide input, the head's weight decay is what keeps it from
    memorising the training photos.
    """
    regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
    features = keras.Input(shape=(feature_dim,), name="features")
    # Standardised inputs: pooled conv activations range from ~0.01 to hundreds by block
    # and channel, which makes a linear softmax on them wildly overconfident. The
    # statistics come from the training vectors; see :func:`feature_statistics`.
    mean, variance = statistics or (np.zeros(feature_dim), np.ones(feature_dim))
    x = layers.Normalization(
        axis=-1, mean=mean.tolist(), variance=variance.tolist(), name="standardize"
    )(features)
    x = layers.Dropout(dropout, name="input_dropout")(x) if dropout > 0 else x
    for i, units in enumerate(dense_units, start=1):
        x = layers.Dense(
            units, activation="relu", kernel_regularizer=regularizer, name=f"dense{i}"
        )(x)
        x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    # float32 output even under mixed precision: a float16 softmax can round to exactly
    # 0 or 1, which breaks the cross-entropy and the confidence shown to users.
    probs = layers.Dense(
        num_classes,
        activation="softmax",
        dtype="float32",
        kernel_regularizer=regularizer,
        name="probs",
    )(x)
    return keras.Model(features, probs, name="head")


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance of training vectors, the variance floored.

    The floor (a tenth of the median channel's spread) keeps near-constant channels from
    being blown up: fine-tuning moves every channel a little, and dividing a small move
    by a near-zero spread wrecked it.
    """
    values = np.asarray(features, np.float64)
    mean, std = values.mean(axis=0), values.std(axis=0)
    floor = 0.1 * float(np.median(std)) + 1e-6
    return mean.astype(np.float32), (np.maximum(std, floor) ** 2).astype(np.float32)


def feature_slice(block_dims: Sequence[int], pool_depth: int) -> slice:
    """Columns of a stored vector (all pooled blocks) that the last ``pool_depth`` fill."""
    if not 1 <= pool_depth <= len(block_dims):
        raise ValueError(f"pool_depth must be 1..{len(block_dims)}, not {pool_depth}")
    return slice(sum(block_dims[: len(block_dims) - pool_depth]), sum(block_dims))


def build_classifier(
    embedder: Embedder,
    head: keras.Model,
    *,
    pool_depth: int,
    augment: bool = True,
) -> tuple[keras.Model, keras.Model, ClassifierParts]:
    """``(model, training_model, parts)`` for raw ``uint8`` images of any size.

    ``model`` is the classifier that is saved and served: ``embedder``'s layers and
    ``head``. ``training_model`` is the same with random augmentation in front of the
    backbone (the very same weights; ``model`` itself when ``augment`` is off).

    The embedder's backbone layers are reused, not copied: build on a copy of the
    embedder (``Embedder.load``) when the result will be fine-tuned, so the embedder of
    the vector space stays what it was.
    """
    spec = embedder.spec
    taps = embedder.taps
    depth = len(embedder.block_dims)
    if not 1 <= pool_depth <= depth:
        raise ValueError(f"pool_depth must be 1..{depth}, not {pool_depth}")
    resize = layers.Resizing(
        spec.image_size,
        spec.image_size,
        interpolation=RESIZE_INTERPOLATION,
        antialias=RESIZE_ANTIALIAS,
        name="resize",
    )
    preprocess = preprocess_layer(spec.backbone)
    pools = [layers.GlobalAveragePooling2D(name=f"pool{i}") for i in range(depth)]
    chosen = range(depth - pool_depth, depth)
    join = layers.Concatenate(name=FEATURES_LAYER) if pool_depth > 1 else None

    def features_of(pixels: keras.KerasTensor) -> keras.KerasTensor:
        maps = taps(preprocess(pixels))
        pooled = [pools[i](maps[i]) for i in chosen]
        return join(pooled) if join is not None else pooled[0]

    images = keras.Input(shape=(None, None, 3), dtype="uint8", name="image")
    pixels = resize(images)
    if join is None:
        # One block: name the pooling layer itself as the features layer.
        pools[depth - 1] = layers.GlobalAveragePooling2D(name=FEATURES_LAYER)
    # The extractor is the chain without augmentation: identical at inference, and what
    # the head was trained on (the stored vectors).
    feature_extractor = keras.Model(images, features_of(pixels), name="feature_extractor")
    model = keras.Model(
        images, head(feature_extractor.output), name=f"bag_classifier_{spec.backbone}"
    )
    training_model = model
    if augment:
        jittered = augmentation_block()(pixels)
        training_model = keras.Model(
            images, head(features_of(jittered)), name=f"bag_classifier_{spec.backbone}_train"
        )
    parts = ClassifierParts(
        backbone_name=spec.backbone,
        image_size=spec.image_size,
        backbone=embedder.backbone,
        head=head,
        feature_extractor=feature_extractor,
    )
    return model, training_model, parts
