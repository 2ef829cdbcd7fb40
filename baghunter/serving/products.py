"""What the service knows beyond the brand: attributes, and the catalog's look-alikes.

Two more things are served next to the brand classifier, each following its own source
of truth without a restart:

* :class:`AttributeHolder` follows ``<attribute_model_name>@<model_alias>`` in the
  registry, with the same pinning and swap protocol as the brand model
  (:class:`~baghunter.serving.holder.AliasFollower`).
* :class:`SimilarSearch` holds the query embedder and the similar-product index of its
  embedding space. The index is rebuilt by the ``image_features`` DAG; the search checks
  the index's marker file every ``poll_interval_s`` and swaps a rebuilt index in the same
  way (load fully, then one reference assignment), so requests never see half an index.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from baghunter.config import Settings
from baghunter.serving.holder import AliasFollower, Refresher
from baghunter.serving.metrics import ServiceMetrics

if TYPE_CHECKING:
    from baghunter.attributes.model import AttributeModel
    from baghunter.embeddings.model import Embedder
    from baghunter.similar.index import SimilarIndex

logger = logging.getLogger(__name__)

_NO_INDEX = (
    "no similar-product index has been built for the configured embedding space yet "
    "(run the image_features DAG or `baghunter similar build`)"
)


class AttributeHolder(AliasFollower["AttributeModel"]):
    """Follows the attribute model, ``<attribute_model_name>@<model_alias>``."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics | None = None) -> None:
        super().__init__(settings, settings.attribute_model_name, metrics)

    def _load(self, info: dict[str, Any]) -> AttributeModel:
        from baghunter.attributes.model import load_attribute_model

        model = load_attribute_model(str(info["uri"]))
        # Warm-up, as for the brand model: tracing happens here, not in a request.
        size = model.image_size
        model.predict_images([np.zeros((size, size, 3), np.uint8)])
        return model

    def _version_of(self, served: AttributeModel) -> str:
        return str(served.version)


@dataclass(frozen=True)
class SearchState:
    """An embedder and an index of the same space; immutable once serving."""

    embedder: Embedder
    index: SimilarIndex
    index_stamp: float  # mtime of the index's marker file when it was loaded
    loaded_at: str

    def query(self, image: np.ndarray, k: int) -> list[Any]:
        vector = self.embedder.embed_arrays([image])[0]
        return self.index.query(vector, k)


class SimilarSearch(Refresher):
    """Keeps the query embedder and the newest saved index of its space in service."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.poll_interval_s, "baghunter-similar-index")
        self.settings = settings
        self._current: SearchState | None = None
        self._embedder: Embedder | None = None
        self.unavailable_reason = "the similar-product index is still loading"
        self._lock = threading.Lock()

    @property
    def current(self) -> SearchState | None:
        return self._current

    def refresh(self) -> bool:
        """Load the index if it is new or was rebuilt; True if swapped. Never raises."""
        from baghunter.similar.index import SimilarIndex, default_index_dir

        with self._lock:
            if self._embedder is None and not any(
                (self.settings.features_dir / "index").glob("*/index.json")
            ):
                # No index of any space yet: building the embedder (VGG16: seconds, and a
                # weights download for "imagenet") can wait until there is one.
                self.unavailable_reason = _NO_INDEX
                return False
            try:
                embedder = self._get_embedder()
            except Exception as exc:
                logger.exception("cannot build the query embedder; similar search is off")
                self.unavailable_reason = f"the query embedder cannot be built: {exc}"
                return False
            directory = default_index_dir(self.settings, embedder.space)
            marker = directory / "index.json"
            try:
                stamp = marker.stat().st_mtime
            except FileNotFoundError:
                if self._current is None:
                    self.unavailable_reason = _NO_INDEX
                return False
            current = self._current
            if current is not None and current.index_stamp == stamp:
                return False
            try:
                index = SimilarIndex.load(directory)
            except Exception:
                logger.exception("could not load the similar-product index at %s", directory)
                return False
            self._current = SearchState(
                embedder=embedder,
                index=index,
                index_stamp=stamp,
                loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            logger.info(
                "similar search: %d images of %s (%s engine)", len(index), index.space, index.engine
            )
            return True

    def _get_embedder(self) -> Embedder:
        if self._embedder is None:
            from baghunter.embeddings.model import Embedder, EmbedderSpec

            embedder = Embedder(EmbedderSpec.from_settings(self.settings))
            size = embedder.spec.image_size
            embedder.embed_arrays([np.zeros((size, size, 3), np.uint8)])  # warm-up
            self._embedder = embedder
        return self._embedder
