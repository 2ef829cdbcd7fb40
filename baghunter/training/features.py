"""Disk cache of frozen-backbone features, keyed by image content.

While the backbone is frozen, its pooled output for an image never changes, yet a naive
phase 1 recomputes it every epoch, which is nearly all of that phase's cost (VGG16's conv
stack versus a few dense layers). Computing it once per image and training the head on
the cached vectors makes phase 1 epochs take milliseconds, and because entries are keyed
by the image's sha256, the next training run (a retrain after new listings were ingested,
a hyper-parameter sweep) reuses every feature of the images it has already seen.

A cache directory is only valid for one exact backbone: :func:`backbone_id` derives its
name from the backbone *weights themselves*, so ImageNet weights, a local weights file and
a random initialisation each get their own, and a random initialisation (``weights="none"``)
is reused only where it really reproduces bit for bit (same seed, same Keras).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from baghunter.dataset.manifest import ManifestEntry
from baghunter.training.data import path_dataset

logger = logging.getLogger(__name__)

# Bump when the resize or preprocessing in front of the backbone changes: features computed
# by an older pipeline must not be mixed with new ones.
_PIPELINE_VERSION = 1


def weights_fingerprint(model: keras.Model) -> str:
    """sha256 of a model's weight values: identifies what the model computes."""
    digest = hashlib.sha256()
    for variable in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(variable))
        digest.update(f"{variable.path}:{value.dtype}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def weights_source(weights: str) -> str:
    """Where weights come from, as space ids spell it: ``imagenet``, ``none`` or ``file``."""
    return weights if weights in ("imagenet", "none") else "file"


def backbone_id(backbone_name: str, weights: str, backbone: keras.Model, image_size: int) -> str:
    """Cache key of a frozen backbone: readable prefix, weights fingerprint, input size.

    The readable part says where the weights came from (``imagenet``, ``none`` or
    ``file``); the fingerprint is what guarantees two runs share features only when they
    would have computed the same ones. The compute dtype is part of it because float16
    features differ from float32 ones.
    """
    return "-".join(
        [
            backbone_name,
            weights_source(weights),
            weights_fingerprint(backbone)[:16],
            f"{image_size}px",
            backbone.compute_dtype,
            f"v{_PIPELINE_VERSION}",
        ]
    )


class FeatureCache:
    """Pooled features of one backbone, one ``.npy`` file per image sha256.

    One file per image keeps the cache trivially shareable between datasets (a new
    manifest that shares most images reuses them) and between concurrent runs (files are
    written atomically, so a reader never sees half a file, and two writers of the same
    image write the same bytes).
    """

    def __init__(self, cache_dir: Path, backbone_id: str) -> None:
        self.directory = Path(cache_dir) / backbone_id
        self.computed = 0  # images whose features were computed by this instance
        self.reused = 0  # images whose features were read back from disk

    def _path(self, sha256: str) -> Path:
        # Two-character fan-out keeps directories small for large catalogs.
        return self.directory / sha256[:2] / f"{sha256}.npy"

    def features_for(
        self,
        entries: Sequence[ManifestEntry],
        extractor: keras.Model,
        image_size: int,
        batch_size: int,
    ) -> np.ndarray:
        """Features of ``entries`` in their order, computing only the uncached images."""
        unique = {e.sha256: e for e in entries}
        missing = [e for sha, e in unique.items() if not self._path(sha).is_file()]
        self.reused += len(unique) - len(missing)
        if missing:
            self._compute(missing, extractor, image_size, batch_size)
        logger.info(
            "features for %d images: %d computed, %d from cache %s",
            len(unique),
            len(missing),
            len(unique) - len(missing),
            self.directory,
        )
        if not entries:
            return np.zeros((0, extractor.output_shape[-1]), dtype=np.float32)
        loaded = {sha: np.load(self._path(sha)) for sha in unique}
        return np.stack([loaded[e.sha256] for e in entries])

    def _compute(
        self,
        entries: Sequence[ManifestEntry],
        extractor: keras.Model,
        image_size: int,
        batch_size: int,
    ) -> None:
        batches = path_dataset([e.path for e in entries], image_size).batch(batch_size)
        start = 0
        # Batch by batch, storing as we go, so an interrupted run keeps what it computed.
        for images in batches.prefetch(tf.data.AUTOTUNE):
            features = np.asarray(extractor.predict_on_batch(images), dtype=np.float32)
            for entry, vector in zip(entries[start : start + len(features)], features, strict=True):
                self._store(entry.sha256, vector)
            start += len(features)
            self.computed += len(features)

    def _store(self, sha256: str, vector: np.ndarray) -> None:
        target = self._path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, vector)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
