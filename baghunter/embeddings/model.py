"""The embedding model: raw ``uint8`` photo in, one pooled backbone feature vector out.

Resize, the backbone's own preprocessing, the frozen backbone, then *multi-scale* pooling:
the global average of each of the last three conv blocks, concatenated (256 + 512 + 512 =
1280 values for VGG16). The last block alone says what the object is but has pooled away
most of its colour and texture; earlier blocks keep them. On 3,000 real catalog photos a
linear probe on the three blocks beat the last block alone by 10 points on article type,
11 on base colour and 6 on gender (docs/benchmarks.md, "Shared embeddings"), at no extra
backbone cost. Its :attr:`Embedder.space` names the vector space in the
:class:`VectorStore`: the backbone id plus the pooling scheme, and the engine when it is
not Keras (``-onnx``, ``-onnx-int8``): an engine's vectors are close to Keras' but not
equal, so they are another space and never mixed with them. An engine's exported file is
kept in the space's folder beside the weights, so queries are embedded by that very file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from baghunter.config import Settings
from baghunter.engines import KERAS, ONNX, ONNX_INT8
from baghunter.storage import Location, exists, join, staged
from baghunter.training.backbones import build_backbone, preprocess_layer, validate_weights
from baghunter.training.data import (
    RESIZE_ANTIALIAS,
    RESIZE_INTERPOLATION,
    load_images,
    path_dataset,
    resize_uint8,
)
from baghunter.training.features import backbone_id, weights_source

if TYPE_CHECKING:
    from baghunter.engines.runners import OnnxRunner

logger = logging.getLogger(__name__)

# Names the pooling scheme in the space id: vectors pooled differently are another space.
POOLING = "gap3"
_TAPPED_BLOCKS = 3
_RANDOM_INIT_SEED = 1234
# The embedder a vector space was made with, kept in the space's folder.
EMBEDDER_META = "embedder.json"
EMBEDDER_WEIGHTS = "embedder.weights.h5"
# Photos an int8 space's quantization is calibrated on: the first photos it embeds.
CALIBRATION_PHOTOS = 64


def engine_file(engine: str) -> str:
    return f"embedder-{engine}.onnx"


def seeded_initialisation(model: keras.Model, seed: int) -> None:
    """Give every kernel He-normal values from ``seed`` alone (biases 0, scales 1).

    Keras' own initialisers draw from a random state that depends on what the process
    (and thread) did before, so two builds of an untrained backbone in one service could
    differ; these values depend on nothing but the seed and the architecture.
    """
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if len(shape) >= 2:
            # Keras' he_normal: a normal truncated at two standard deviations, rescaled
            # so the kept values still have variance 2 / fan_in.
            fan_in = int(np.prod(shape[:-1]))
            value = rng.normal(size=shape)
            outside = np.abs(value) > 2
            while outside.any():
                value[outside] = rng.normal(size=int(outside.sum()))
                outside = np.abs(value) > 2
            value *= np.sqrt(2.0 / fan_in) / 0.87962566103423978
        elif variable.path.endswith(("gamma", "moving_variance")):
            value = np.ones(shape)
        else:
            value = np.zeros(shape)
        variable.assign(value.astype(variable.dtype))


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
    engine: str = KERAS  # what computes the vectors (baghunter.engines)

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
        engine: str | None = None,
    ) -> EmbedderSpec:
        """Settings overridden by what a user gave; a random-init backbone gets no weights."""
        name = backbone or settings.embed_backbone
        default_weights = settings.weights if name == "vgg16" else "none"
        return cls(
            backbone=name,
            weights=weights or default_weights,
            image_size=image_size or settings.embed_image_size,
            engine=engine or settings.embed_engine,
        )

    def validate(self) -> None:
        validate_weights(self.backbone, self.weights)
        if not 32 <= self.image_size <= 512:
            raise ValueError(f"embedding image size must be 32..512, not {self.image_size}")


class Embedder:
    """A built embedding model and the id of the vector space it produces."""

    def __init__(self, spec: EmbedderSpec, *, weights_file: Path | None = None) -> None:
        """Build the embedder ``spec`` describes.

        ``weights_file`` holds the whole embedder's weights as :meth:`save` wrote them:
        the architecture is built without weights and these are loaded instead, so a
        space whose weights were downloaded, read from a file that has since moved, or
        drawn at random is rebuilt exactly, with no download and no randomness.
        """
        if weights_file is None:
            spec.validate()
        self.spec = spec
        build_weights = "none" if weights_file is not None else spec.weights
        backbone = build_backbone(spec.backbone, build_weights, spec.image_size)
        if build_weights == "none" and weights_file is None:
            # A random backbone is only a reusable space if every build draws the same
            # weights, whatever Keras' global random state is in this thread.
            seeded_initialisation(backbone, _RANDOM_INIT_SEED)
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
        # Kept for models built on this embedder (the brand classifier reuses its layers).
        self.backbone = backbone
        self.taps = taps
        maps = taps(preprocess_layer(spec.backbone)(pixels))
        pooled = layers.Concatenate(name="pooled")(
            [layers.GlobalAveragePooling2D(name=f"pool{i}")(m) for i, m in enumerate(maps)]
        )
        self.model = keras.Model(images, pooled, name=f"embedder_{spec.backbone}")
        if weights_file is not None:
            self.model.load_weights(weights_file)
        base_id = backbone_id(spec.backbone, spec.weights, backbone, spec.image_size)
        engine = "" if spec.engine == KERAS else f"-{spec.engine}"
        self.space = f"{base_id}-{POOLING}{engine}"
        self.dim = int(self.model.output_shape[-1])
        self._runner: OnnxRunner | None = None  # set by use_engine() for an exported engine

    # --- the engine ------------------------------------------------------------------------
    def use_engine(self, directory: Location, calibration: Sequence[str] = ()) -> None:
        """Run on the space's exported engine file in ``directory``, making it if need be.

        The file is made once per space: fp32 is exported from this model; int8 is also
        quantized, calibrated on ``calibration`` (image files, the first ones the space
        embeds). Afterwards every embedder of the space loads that file, so the space's
        vectors all come from one quantization. Keras needs nothing.
        """
        if self.spec.engine == KERAS or self._runner is not None:
            return
        if self.spec.engine not in (ONNX, ONNX_INT8):
            raise ValueError(f"unknown embedding engine {self.spec.engine!r}")
        with staged(directory, [engine_file(self.spec.engine)]) as local:
            self._use_engine_in(local, calibration)

    def _use_engine_in(self, directory: Path, calibration: Sequence[str]) -> None:
        from baghunter.engines.export import fixed_size_graph, quantize_int8, to_onnx
        from baghunter.engines.runners import OnnxRunner

        target = directory / engine_file(self.spec.engine)
        if not target.is_file():
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".engine-", dir=directory) as tmp:
                fp32 = to_onnx(
                    fixed_size_graph(self.model, self.spec.image_size), Path(tmp) / "fp32.onnx"
                )
                made = fp32
                if self.spec.engine == ONNX_INT8:
                    if not calibration:
                        raise ValueError(
                            f"the int8 space {self.space} has no engine file yet, and "
                            "quantizing it needs photos to calibrate on: run the embedding "
                            "stage (`baghunter embed`) to create it"
                        )
                    photos = load_images(
                        list(calibration[:CALIBRATION_PHOTOS]), self.spec.image_size
                    )
                    made = quantize_int8(fp32, Path(tmp) / "int8.onnx", photos)
                os.replace(made, target)  # complete or absent, never half-written
            logger.info("made the %s engine of space %s", self.spec.engine, self.space)
        self._runner = OnnxRunner(target, self.spec.engine)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        if self._runner is not None:
            return self._runner.run(np.asarray(batch))[0]
        if self.spec.engine != KERAS:
            raise RuntimeError(f"space {self.space}: call use_engine() before embedding")
        return np.asarray(self.model.predict_on_batch(batch))

    # --- persistence: a vector space keeps the model that made it ------------------------
    def save(self, directory: Location) -> None:
        """Keep this embedder beside its vectors (once; an existing copy is left alone).

        Whoever embeds a query into the space later (the service, a batch job on another
        machine) loads exactly this model with :meth:`load`, rather than rebuilding it
        from settings that may name other weights, need a download, or draw other
        random numbers.
        """
        # In an object store: made in a staging folder, published weights first, the
        # metadata (the mark of a complete copy) last.
        with staged(directory, [EMBEDDER_WEIGHTS, EMBEDDER_META]) as local:
            self._save_in(local)

    def _save_in(self, directory: Path) -> None:
        if (directory / EMBEDDER_META).is_file():
            return
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".embedder-", dir=directory))
        try:
            self.model.save_weights(staging / EMBEDDER_WEIGHTS)
            meta = {
                "space": self.space,
                "backbone": self.spec.backbone,
                "weights": self.spec.weights,
                "image_size": self.spec.image_size,
                "engine": self.spec.engine,
            }
            (staging / EMBEDDER_META).write_text(json.dumps(meta, indent=2))
            # Weights first, the metadata last: its presence marks a complete copy.
            os.replace(staging / EMBEDDER_WEIGHTS, directory / EMBEDDER_WEIGHTS)
            os.replace(staging / EMBEDDER_META, directory / EMBEDDER_META)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @property
    def block_dims(self) -> list[int]:
        """Width of each pooled block in the vector, earliest block first."""
        return [int(shape[-1]) for shape in self.taps.output_shape]

    @classmethod
    def load(cls, directory: Location, *, verify: bool = True) -> Embedder:
        """The embedder saved with a vector space; checked to produce that very space.

        ``verify=False`` skips the check, for a copy built under another dtype policy
        (mixed-precision fine-tuning starts from these weights but is another space).
        """
        files = [EMBEDDER_WEIGHTS, engine_file(ONNX), engine_file(ONNX_INT8), EMBEDDER_META]
        with staged(directory, files) as local:
            return cls._load_from(local, directory, verify)

    @classmethod
    def _load_from(cls, directory: Path, shown: Location, verify: bool) -> Embedder:
        meta_path = directory / EMBEDDER_META
        if not meta_path.is_file():
            raise FileNotFoundError(f"no embedding model is stored with the space at {shown}")
        meta = json.loads(meta_path.read_text())
        spec = EmbedderSpec(
            backbone=str(meta["backbone"]),
            weights=str(meta["weights"]),
            image_size=int(meta["image_size"]),
            engine=str(meta.get("engine", KERAS)),  # spaces stored before engines: Keras
        )
        embedder = cls(spec, weights_file=directory / EMBEDDER_WEIGHTS)
        if verify and embedder.space != meta["space"]:
            raise ValueError(
                f"the embedding model stored at {shown} computes space {embedder.space}, "
                f"not {meta['space']}: the stored copy is damaged"
            )
        if verify:
            embedder.use_engine(directory)
        return embedder

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
            out.append(np.asarray(self._forward(np.stack(chunk)), np.float32))
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
            vectors = np.asarray(self._forward(batch), dtype=np.float32)
            if on_batch is not None:
                on_batch(start, vectors)
            out.append(vectors)
            start += len(vectors)
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)


def embedder_of_space(settings: Settings, space: str) -> Embedder:
    """The model that made the vector space ``space``, to embed queries into it.

    It is the copy stored with the space's vectors. A space embedded before embedders
    were stored is served by the configured embedder only when that names the same
    backbone and source of weights (so it needs no download the space did not) and
    really computes the space; that embedder is then stored with it, once.
    """
    stored = join(settings.features_root, space)
    if exists(join(stored, EMBEDDER_META)):
        return Embedder.load(stored)
    spec = EmbedderSpec.from_settings(settings)
    if not space.startswith(f"{spec.backbone}-{weights_source(spec.weights)}-"):
        raise ValueError(
            f"no embedding model is stored with space {space}, and the configured one "
            f"({spec.backbone}, weights {spec.weights}) is another; run `baghunter embed` "
            "with the weights that made it to store it"
        )
    embedder = Embedder(spec)
    if embedder.space != space:
        raise ValueError(
            f"no embedding model is stored with space {space}, and the configured one "
            f"computes {embedder.space} instead"
        )
    embedder.save(stored)
    embedder.use_engine(stored)
    return embedder
