"""The exported attribute model: raw photo in, one probability vector per attribute out.

It is the embedding model (resize, backbone preprocessing, frozen backbone, pooling)
followed by the trained heads, so serving sends raw ``uint8`` images of any size. The
heads stay reachable as a nested model (:data:`~baghunter.attributes.heads.HEADS_NAME`),
so the listing audit can score tens of thousands of stored vectors without recomputing
them — :meth:`AttributeModel.predict_features`. Everything needed to read the outputs
(vocabularies, the embedding space the heads expect, the input size) is in the model's
own MLmodel metadata.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from baghunter import registry

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

EXPORT_NAME = "product_attributes"
KIND = "attributes"  # metadata "kind": tells an attribute model from a brand classifier


@dataclass
class AttributeModel:
    """A loaded attribute model and what is needed to read its outputs."""

    name: str | None  # None when loaded from a run or a path rather than the registry
    version: int | None
    run_id: str | None
    space: str  # the embedding space its heads read (VectorStore id)
    image_size: int
    attributes: dict[str, list[str]]  # attribute -> vocabulary, in output-column order
    model: keras.Model = field(repr=False)
    heads: keras.Model = field(repr=False)
    majority: dict[str, str] = field(default_factory=dict)  # training-majority class
    dataset_version: str | None = None

    def predict_images(
        self, images: Sequence[np.ndarray], batch_size: int = 64
    ) -> dict[str, np.ndarray]:
        """Probabilities per attribute for RGB ``uint8`` images of any sizes, rows aligned."""
        from baghunter.attributes.heads import predict_outputs
        from baghunter.training.data import resize_uint8

        resized = []
        for i, image in enumerate(images):
            image = np.asarray(image)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
                raise ValueError(
                    f"image {i}: expected an (h, w, 3) uint8 RGB array, "
                    f"got {image.dtype} {image.shape}"
                )
            # One batch needs one shape; the model's own Resizing is then an identity.
            resized.append(np.asarray(resize_uint8(image, self.image_size)))
        size = self.image_size
        batch = np.stack(resized) if resized else np.zeros((0, size, size, 3), np.uint8)
        return predict_outputs(self.model, batch, self.attributes, batch_size)

    def predict_features(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Probabilities per attribute for vectors of :attr:`space` ``(n, d)``."""
        from baghunter.attributes.heads import predict_heads

        return predict_heads(self.heads, features, self.attributes)


def export_model(embedder_model: keras.Model, heads: keras.Model) -> keras.Model:
    """Raw ``uint8`` images of any size -> ``{output key: probabilities}``."""
    import keras

    images = keras.Input(shape=(None, None, 3), dtype="uint8", name="image")
    return keras.Model(images, heads(embedder_model(images)), name=EXPORT_NAME)


def log_attribute_model(
    model: keras.Model,
    *,
    run_id: str,
    name: str,
    metadata: dict[str, Any],
    input_example: np.ndarray,
) -> registry.ModelRef:
    """Log the exported model to ``run_id`` and register it as a new version of ``name``."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import Schema, TensorSpec

    outputs = model.predict_on_batch(input_example)
    inferred = infer_signature(input_example, {k: np.asarray(v) for k, v in outputs.items()})
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))]),
        outputs=inferred.outputs,
    )
    with registry.in_run(run_id):
        info = mlflow.keras.log_model(
            model,
            name=registry.MODEL_ARTIFACT,
            registered_model_name=name,
            signature=signature,
            metadata={"kind": KIND, **metadata},
            pip_requirements=registry.pip_requirements(),
        )
    version = info.registered_model_version
    if version is None:
        raise RuntimeError(f"MLflow did not register {name!r} for run {run_id}")
    client = MlflowClient()
    tags = {
        "attributes": json.dumps(sorted(metadata["attributes"])),
        registry.TAG_DATASET_VERSION: str(metadata.get("dataset_version", "")),
        registry.TAG_GIT_COMMIT: registry.git_commit(),
        registry.TAG_IMAGE_SIZE: str(metadata["image_size"]),
        "space": str(metadata["space"]),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)
    ref = registry.ModelRef(
        name=name, version=int(version), uri=f"models:/{name}/{version}", run_id=run_id
    )
    log.info("registered %s (run %s)", ref.uri, run_id)
    return ref


def load_attribute_model(model_uri: str) -> AttributeModel:
    """Load a registered (``models:/<name>@<alias>`` or ``/<version>``) or logged model.

    An alias is resolved to its version first, so the model and the version reported for
    it belong together. Raises :class:`baghunter.registry.ModelNotFound` for an unknown
    model, version or alias, and ValueError for a model that is not an attribute model.
    """
    import mlflow
    from mlflow.models import Model

    from baghunter.attributes.heads import HEADS_NAME

    pinned, name, version, run_id = registry.resolve_model_uri(model_uri)
    with tempfile.TemporaryDirectory(prefix="baghunter-attributes-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=pinned, dst_path=tmp)
        descriptor = Model.load(local)
        meta = descriptor.metadata or {}
        if meta.get("kind") != KIND or "attributes" not in meta:
            raise ValueError(f"{model_uri} is not an attribute model (no attribute metadata)")
        import baghunter.training.backbones  # noqa: F401  (registers the custom layers)

        model = registry.load_native_keras(local, descriptor)
    return AttributeModel(
        name=name,
        version=version,
        run_id=run_id or descriptor.run_id,
        space=str(meta["space"]),
        image_size=int(meta["image_size"]),
        attributes={k: list(v) for k, v in meta["attributes"].items()},
        model=model,
        heads=model.get_layer(HEADS_NAME),
        majority={k: str(v) for k, v in (meta.get("majority") or {}).items()},
        dataset_version=meta.get("dataset_version"),
    )
