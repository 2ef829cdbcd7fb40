"""tf.data input pipelines over manifest entries.

Images are decoded and resized to the model's square input here, once, and handed to the
model as ``uint8``: the model itself (see :mod:`baghunter.training.model`) owns all
preprocessing, so the pipeline never normalises anything and cannot disagree with serving.
Resizing here uses exactly the interpolation of the model's ``Resizing`` layer, which makes
that layer an identity on these images (only the rounding back to ``uint8`` differs from
resizing a raw image inside the model, by at most half a grey level).

tf.data is used on every Keras backend (JAX included): it is only the input pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from baghunter.dataset.manifest import ManifestEntry
from baghunter.images.locations import read_many
from baghunter.storage import is_url

# The one resize used everywhere (pipeline, prediction, the model's Resizing layer).
# Antialiasing matters: product photos are often 5-10x larger than the model input, and
# plain bilinear sampling at that ratio aliases fine texture such as monogram prints.
RESIZE_INTERPOLATION = "bilinear"
RESIZE_ANTIALIAS = True


def resize_uint8(image: tf.Tensor | np.ndarray, image_size: int) -> tf.Tensor:
    """Resize an ``(h, w, 3)`` image (or a batch) to ``image_size`` square, as ``uint8``."""
    resized = tf.image.resize(
        image,
        (image_size, image_size),
        method=RESIZE_INTERPOLATION,
        antialias=RESIZE_ANTIALIAS,
    )
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def _read_image(path: tf.Tensor, image_size: int) -> tf.Tensor:
    return _decode_image(tf.io.read_file(path), image_size)


def _decode_image(raw: tf.Tensor, image_size: int) -> tf.Tensor:
    # channels=3 turns greyscale and RGBA files into RGB; expand_animations=False keeps
    # only the first frame of a GIF, so every file decodes to one (h, w, 3) image.
    image = tf.io.decode_image(raw, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return resize_uint8(image, image_size)


def path_dataset(paths: Sequence[str], image_size: int) -> tf.data.Dataset:
    """Unbatched dataset of resized ``uint8`` images, in the order of ``paths``.

    ``paths`` are files or fsspec URLs of the photo store (``BAGHUNTER_IMAGES_URI``).
    """
    paths = [str(path) for path in paths]
    if any(is_url(path) for path in paths):
        # Object-store URLs (s3://...) are read by fsspec, many at once: TensorFlow's own
        # file system has no S3 support without a plugin.
        raw = tf.data.Dataset.from_generator(
            lambda: read_many(paths), output_signature=tf.TensorSpec([], tf.string)
        )
        return raw.map(
            lambda data: _decode_image(data, image_size), num_parallel_calls=tf.data.AUTOTUNE
        )
    return tf.data.Dataset.from_tensor_slices(paths).map(
        lambda path: _read_image(path, image_size), num_parallel_calls=tf.data.AUTOTUNE
    )


def label_indices(entries: Sequence[ManifestEntry], classes: Sequence[str]) -> np.ndarray:
    """Integer labels of ``entries`` in the order of ``classes`` (a ValueError if unknown)."""
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({e.label for e in entries} - index.keys())
    if unknown:
        raise ValueError(f"labels not in the class list: {unknown}")
    return np.array([index[e.label] for e in entries], dtype=np.int32)


def image_dataset(
    entries: Sequence[ManifestEntry],
    classes: Sequence[str],
    image_size: int,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    cache: bool | Path = True,
) -> tf.data.Dataset:
    """Batches of ``(uint8 images (b, s, s, 3), int32 labels)`` for training or scoring.

    ``cache`` keeps the decoded, resized images after the first epoch (in memory when
    True, in files at that path otherwise), so later epochs cost no JPEG decoding. The cache
    sits before the shuffle so every epoch still sees a new order.
    """
    if not entries:
        raise ValueError("no images to build a dataset from")
    labels = tf.data.Dataset.from_tensor_slices(label_indices(entries, classes))
    images = path_dataset([e.path for e in entries], image_size)
    dataset = tf.data.Dataset.zip(images, labels)
    if cache is not False:
        dataset = dataset.cache("" if cache is True else str(cache))
    if shuffle:
        dataset = dataset.shuffle(len(entries), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load_images(paths: Sequence[str], image_size: int, batch_size: int = 64) -> np.ndarray:
    """Decode and resize image files into one ``(n, s, s, 3)`` ``uint8`` array."""
    if not paths:
        return np.zeros((0, image_size, image_size, 3), dtype=np.uint8)
    batches = path_dataset(paths, image_size).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return np.concatenate([batch.numpy() for batch in batches])
