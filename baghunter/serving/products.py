"""What the service knows beyond the brand: attributes, and the catalog's look-alikes.

Two more things are served next to the brand classifier, each following its own source
of truth without a restart:

* :class:`AttributeHolder` follows ``<attribute_model_name>@<model_alias>`` in the
  registry, with the same pinning and swap protocol as the brand model
  (:class:`~baghunter.serving.holder.AliasFollower`).
* :class:`SimilarSearch` holds the newest similar-product index and the query embedder
  of that index's embedding space. The index is rebuilt by the ``image_features`` DAG;
  the search checks the indexes' marker files every ``poll_interval_s`` and swaps a
  rebuilt index in the same way (load fully, then one reference assignment), so
  requests never see half an index.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from baghunter.config import Settings
from baghunter.serving.holder import AliasFollower, Refresher
from baghunter.serving.metrics import ServiceMetrics
from baghunter.storage import Location, glob, join, modified

if TYPE_CHECKING:
    from baghunter.attributes.model import AttributeModel
    from baghunter.embeddings.model import Embedder
    from baghunter.similar.index import SimilarIndex

logger = logging.getLogger(__name__)

_NO_INDEX = (
    "no similar-product index has been built yet "
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
    index_dir: Location
    index_stamp: float  # when the index's marker file was written, as loaded
    loaded_at: str

    def query(self, image: np.ndarray, k: int) -> list[Any]:
        vector = self.embedder.embed_arrays([image])[0]
        return self.index.query(vector, k)


def newest_index(root: Location) -> tuple[Location, float] | None:
    """The most recently built complete index under ``root`` and when its marker was written."""
    found: list[tuple[float, Location]] = []
    for marker in glob(root, "*/index.json"):
        folder = marker.parent if isinstance(marker, Path) else marker.rsplit("/", 1)[0]
        name = folder.name if isinstance(folder, Path) else folder.rsplit("/", 1)[-1]
        if name.startswith("."):  # an index being written or retired
            continue
        try:
            found.append((modified(marker), folder))
        except FileNotFoundError:  # replaced between the listing and the stat
            continue
    if not found:
        return None
    stamp, directory = max(found)
    return directory, stamp


class SimilarSearch(Refresher):
    """Serves the newest similar-product index with the embedder of *its* space.

    The index says which space its vectors live in; the query embedder is the model that
    made that space, loaded from the space's folder (:meth:`Embedder.load`), never one
    rebuilt from the service's own settings: those may name other weights, need a
    download the index never needed, or (untrained backbones) draw other random numbers,
    and a query embedded in another space matches nothing.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.poll_interval_s, "baghunter-similar-index")
        self.settings = settings
        self._current: SearchState | None = None
        self.unavailable_reason = "the similar-product index is still loading"
        self._lock = threading.Lock()

    @property
    def current(self) -> SearchState | None:
        return self._current

    def refresh(self) -> bool:
        """Load the newest index if it is new or was rebuilt; True if swapped. Never raises."""
        from baghunter.similar.index import SimilarIndex

        with self._lock:
            newest = newest_index(join(self.settings.features_root, "index"))
            if newest is None:
                self.unavailable_reason = _NO_INDEX
                return False
            directory, stamp = newest
            current = self._current
            if current is not None and (current.index_dir, current.index_stamp) == newest:
                return False
            try:
                index = SimilarIndex.load(directory)
            except Exception as exc:
                logger.exception("could not load the similar-product index at %s", directory)
                if current is None:
                    self.unavailable_reason = f"the similar-product index cannot be read: {exc}"
                return False
            if current is not None and current.embedder.space == index.space:
                embedder = current.embedder
            else:
                try:
                    embedder = self._embedder_of(index.space)
                except Exception as exc:
                    logger.exception("cannot build the query embedder of %s", index.space)
                    if current is None:
                        self.unavailable_reason = (
                            f"the query embedder of space {index.space} cannot be built: {exc}"
                        )
                    return False
            self._current = SearchState(
                embedder=embedder,
                index=index,
                index_dir=directory,
                index_stamp=stamp,
                loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            logger.info(
                "similar search: %d images of %s (%s engine)", len(index), index.space, index.engine
            )
            return True

    def _embedder_of(self, space: str) -> Embedder:
        """The model that made ``space``, warmed up."""
        from baghunter.embeddings.model import embedder_of_space

        embedder = embedder_of_space(self.settings, space)
        size = embedder.spec.image_size
        embedder.embed_arrays([np.zeros((size, size, 3), np.uint8)])  # warm-up
        return embedder
