"""What names an embedding space: the backbone, where its weights came from, and the weights.

A vector computed by one backbone can only be compared with vectors of the very same
backbone: :func:`backbone_id` derives the space's name from the backbone *weights
themselves*, so ImageNet weights, a local weights file and a random initialisation each
get their own space, and two runs share vectors only when they would have computed the
same ones.
"""

from __future__ import annotations

import hashlib

import keras
import numpy as np

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
