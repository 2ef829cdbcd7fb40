"""The embedding model: raw ``uint8`` photo in, one pooled backbone feature vector out.

Resize, the backbone's own preprocessing, the frozen backbone, then *multi-scale* pooling:
the global average of each of the last three conv blocks, concatenated (256 + 512 + 512 =
1280 values for VGG16). The last block alone says what the object is but has pooled away
most of its colour and texture; earlier blocks keep them. On 3,000 real catalog photos a
linear probe on the three blocks beat the last block alone by 10 points on article type,
11 on base colour and 6 on gender (docs/benchmarks.md, "Shared embeddings"), at no extra
backbone cost. Its :attr:`Embedder.space` names the vector space in the
:class:`VectorStore`: the backbone id plus the pooling scheme.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from baghunter.config import Settings
from baghunter.training.backbones import build_backbone, preprocess_layer, validate_weights
from baghunter.training.data import (
    RESIZE_ANTIALIAS,
    RESIZE_INTERPOLATION,
    path_dataset,
    resize_uint8,
)
from baghunter.training.features import backbone_id

logger = logging.getLogger(__name__)

# Names the pooling scheme in the space id: vectors pooled differently are another space.
POOLING = "gap3"
_TAPPED_BLOCKS = 3
_RANDOM_INIT_SEED = 1234


def pooled_blocks(backbone: keras.Model) -> list[str]:
    """Names of the pooling layers closing the backbone's last three conv blocks."""
    names = [layer.name for layer in backbone.layers if isinstance(layer, layers.MaxPooling2D)]
    if len(names) < _TAPPED_BLOCKS:
        raise ValueError(f"{backbone.name} has fewer than {_TAPPED_BLOCKS} pooled blocks")
    return names[-_TAPPED_BLOCKS:]


@dataclass(frozen=True)
class EmbedderSpec:
    """Which backbone embeds, with which weights, at which square input size."""

    backbone: str = "vgg16"
    weights: str = "imagenet"
    image_size: int = 64

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbedderSpec:
        return cls.resolve(settings)

    @classmethod
    def resolve(
        cls,
        settings: Settings,
        *,
        backbone: str | None = None,
        weights: str | None = None,
        image_size: int | None = None,
    ) -> EmbedderSpec:
        """Settings overridden by what a user gave; a random-init backbone gets no weights."""
        name = backbone or settings.embed_backbone
        default_weights = settings.weights if name == "vgg16" else "none"
        return cls(
            backbone=name,
            weights=weights or default_weights,
            image_size=image_size or settings.embed_image_size,
        )

    def validate(self) -> None:
        validate_weights(self.backbone, self.weights)
        if not 32 <= self.image_size <= 512:
            raise ValueError(f"embedding image size must be 32..512, not {self.image_size}")


class Embedder:
    """A built embedding model and the id of the vector space it produces."""

    def __init__(self, spec: EmbedderSpec) -> None:
        spec.validate()
        self.spec = spec
        if spec.weights == "none":
            # A random backbone is only a reusable space if every build draws the same
            # weights: seed it, so the next run's space id matches and its vectors count.
            keras.utils.set_random_seed(_RANDOM_INIT_SEED)
        backbone = build_backbone(spec.backbone, spec.weights, spec.image_size)
        backbone.trainable = False
        images = keras.Input(shape=(None, None, 3), dtype="uint8", name="image")
        pixels = layers.Resizing(
            spec.image_size,
            spec.image_size,
            interpolation=RESIZE_INTERPOLATION,
            antialias=RESIZE_ANTIALIAS,
            name="resize",
        )(images)
        taps = keras.Model(
            backbone.inputs,
            [backbone.get_layer(name).output for name in pooled_blocks(backbone)],
            name=f"{backbone.name}_taps",
        )
        maps = taps(preprocess_layer(spec.backbone)(pixels))
        pooled = layers.Concatenate(name="pooled")(
            [layers.GlobalAveragePooling2D(name=f"pool{i}")(m) for i, m in enumerate(maps)]
        )
        self.model = keras.Model(images, pooled, name=f"embedder_{spec.backbone}")
        base_id = backbone_id(spec.backbone, spec.weights, backbone, spec.image_size)
        self.space = f"{base_id}-{POOLING}"
        self.dim = int(self.model.output_shape[-1])

    def embed_arrays(self, images: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """Embed decoded RGB ``uint8`` images of any sizes (each resized here first)."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = self.spec.image_size
        out = []
        for start in range(0, len(images), batch_size):
            chunk = [
                np.asarray(resize_uint8(image, size))
                for image in images[start : start + batch_size]
            ]
            out.append(np.asarray(self.model.predict_on_batch(np.stack(chunk)), np.float32))
        return np.concatenate(out)

    def embed_files(
        self,
        paths: Sequence[str],
        batch_size: int = 64,
        on_batch: Callable[[int, np.ndarray], None] | None = None,
    ) -> np.ndarray:
        """Embed image files in order; ``on_batch(start, vectors)`` sees each batch as done."""
        out = []
        start = 0
        batches = path_dataset(list(paths), self.spec.image_size).batch(batch_size)
        for batch in batches.prefetch(tf.data.AUTOTUNE):
            vectors = np.asarray(self.model.predict_on_batch(batch), dtype=np.float32)
            if on_batch is not None:
                on_batch(start, vectors)
            out.append(vectors)
            start += len(vectors)
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)
