"""The model being served, and the background poller that swaps in a new champion.

The service follows a registry alias (``models:/<name>@champion``) rather than a fixed
version, so promoting a model in MLflow is all it takes to deploy it. The swap protocol:

1. every ``poll_interval_s`` the poller asks the registry which version holds the alias;
2. when it differs from the served one, that version is loaded *pinned by number* (so the
   weights, the class list and the version reported to clients belong together even if the
   alias moves again meanwhile) and warmed with one prediction, so the first real request
   does not pay for graph tracing;
3. only then is :attr:`ModelHolder.current` replaced: one reference assignment, atomic
   under the GIL. A request reads it once and keeps its :class:`ServedModel` to the end, so
   requests in flight finish on the model they started with and none is dropped.

If the registry cannot be reached or the new version fails to load, the old model keeps
serving, the error is logged, and the next poll tries again. Polling runs in a plain thread
because loading a model is blocking work (artifact download, Keras deserialization) that
must not stall the event loop.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import numpy as np

from baghunter import registry
from baghunter.config import Settings
from baghunter.inference import BrandPrediction, BrandPredictor, prediction_dict
from baghunter.serving.metrics import ServiceMetrics
from baghunter.serving.schemas import BrandAnswer, ModelDetails, ModelSummary

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, eq=False)  # identity equality: the batcher groups requests by model
class ServedModel:
    """A loaded classifier with the registry facts about it; immutable once serving."""

    predictor: BrandPredictor
    details: ModelDetails

    @property
    def classes(self) -> list[str]:
        return self.details.classes

    @property
    def version(self) -> str:
        return self.details.version

    @property
    def summary(self) -> ModelSummary:
        return ModelSummary(
            name=self.details.name, version=self.details.version, alias=self.details.alias
        )

    def predict(self, images: list[np.ndarray]) -> list[BrandPrediction]:
        """Answers for raw RGB uint8 images, in one model call (the batcher's unit)."""
        return self.predictor.predict(images, batch_size=max(1, len(images)))

    def answer(self, prediction: BrandPrediction, k: int) -> BrandAnswer:
        """The API's view of one prediction: the brand (or none), top ``k``, open set."""
        return BrandAnswer.model_validate(prediction_dict(self.predictor, prediction, k))


class Refresher:
    """Calls :meth:`refresh` at once and then every ``interval_s``, in a daemon thread.

    A plain thread because refreshing is blocking work (registry calls, artifact
    downloads, Keras deserialization, reading an index) that must not stall the event
    loop. Subclasses implement :meth:`refresh`, which must never raise.
    """

    def __init__(self, interval_s: float, thread_name: str) -> None:
        self._interval_s = interval_s
        self._thread_name = thread_name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start polling; the first check runs at once, in the background.

        Loading in the background keeps startup instant: the process answers ``/healthz``
        immediately and ``/readyz`` turns 200 once a model is in service.
        """
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._poll_forever, name=self._thread_name, daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop polling; a refresh in progress is waited for (up to ``timeout_s``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def _prepare(self) -> bool:
        """Once, in the polling thread, before the first refresh; False gives up polling."""
        return True

    def _poll_forever(self) -> None:
        if not self._prepare():
            return
        while True:
            self.refresh()
            if self._stop.wait(self._interval_s):
                return

    def refresh(self) -> bool:
        raise NotImplementedError


class AliasFollower(Refresher, Generic[T]):
    """Holds one loaded model and keeps it in step with ``<name>@<alias>`` in the registry.

    Subclasses say how a registry version becomes a servable object (:meth:`_load`); the
    polling, pinning and swap protocol described above is shared by every model served.
    """

    def __init__(
        self, settings: Settings, name: str, metrics: ServiceMetrics | None = None
    ) -> None:
        super().__init__(settings.poll_interval_s, f"baghunter-poller-{name}")
        self.settings = settings
        self.name = name
        self.alias = settings.model_alias
        self.metrics = metrics or ServiceMetrics()
        self._current: T | None = None
        # Serializes refreshes (the poller's and any explicit call); never held by requests.
        self._refresh_lock = threading.Lock()

    @property
    def current(self) -> T | None:
        """The model to use for a new request, or None while no champion could be loaded."""
        return self._current

    def _prepare(self) -> bool:
        # Here rather than in start(): the first use imports MLflow (seconds), which must
        # not hold up the event loop. The URI is process-wide MLflow state; setting it
        # again to the same value (one call per follower) is harmless.
        try:
            registry.tracking(self.settings)
        except Exception:
            logger.exception("cannot configure MLflow tracking; no model will be loaded")
            return False
        return True

    def refresh(self) -> bool:
        """Check the alias once; load, warm and swap in a new version. True if swapped.

        Never raises: a failure is logged and counted, and the current model stays.
        """
        with self._refresh_lock:
            try:
                info = registry.champion_info(self.name, self.alias)
            except Exception:
                logger.exception("registry check for %s@%s failed", self.name, self.alias)
                self.metrics.model_load_failures.inc()
                return False
            current = self._current
            if info is None:
                if current is not None:
                    logger.warning(
                        "no version of %s holds @%s any more; still serving version %s",
                        self.name,
                        self.alias,
                        self._version_of(current),
                    )
                return False
            if current is not None and self._version_of(current) == str(info["version"]):
                return False
            try:
                served = self._load(info)
            except Exception:
                kept = "nothing" if current is None else f"version {self._version_of(current)}"
                logger.exception(
                    "could not load %s version %s; still serving %s (retrying next poll)",
                    self.name,
                    info["version"],
                    kept,
                )
                self.metrics.model_load_failures.inc()
                return False
            self._current = served
            self._record_swap(served, current)
            return True

    def _load(self, info: dict[str, Any]) -> T:
        raise NotImplementedError

    def _version_of(self, served: T) -> str:
        raise NotImplementedError

    def _record_swap(self, served: T, previous: T | None) -> None:
        self.metrics.model_swaps.inc()
        logger.info(
            "now serving %s version %s (@%s)%s",
            self.name,
            self._version_of(served),
            self.alias,
            "" if previous is None else f", replacing version {self._version_of(previous)}",
        )


class ModelHolder(AliasFollower[ServedModel]):
    """Follows the brand classifier, ``<model_name>@<model_alias>``."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics | None = None) -> None:
        super().__init__(settings, settings.model_name, metrics)

    def _version_of(self, served: ServedModel) -> str:
        return served.version

    def _load(self, info: dict[str, Any]) -> ServedModel:
        predictor = BrandPredictor.load(str(info["uri"]), engine=self.settings.serving_engine)
        tags = info.get("tags") or {}
        details = ModelDetails(
            name=self.name,
            version=str(info["version"]),
            alias=self.alias,
            run_id=predictor.run_id,
            classes=list(predictor.classes),
            image_size=predictor.image_size,
            dataset_version=tags.get(registry.TAG_DATASET_VERSION),
            metrics={key: float(value) for key, value in (info.get("metrics") or {}).items()},
            open_set_threshold=None if predictor.gate is None else predictor.gate.threshold,
            loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
            engine=predictor.engine,
            engine_reason=predictor.engine_reason,
        )
        served = ServedModel(predictor=predictor, details=details)
        # Warm-up: the first call traces the model's graph (seconds for VGG16), which must
        # happen here rather than in the first request after the swap.
        size = predictor.image_size
        (warm,) = served.predict([np.zeros((size, size, 3), np.uint8)])
        if warm.probs.shape != (len(details.classes),):
            raise ValueError(
                f"model outputs {warm.probs.shape} columns for {len(details.classes)} classes"
            )
        return served

    def _record_swap(self, served: ServedModel, previous: ServedModel | None) -> None:
        self.metrics.model_swaps.inc()
        self.metrics.model_loaded.set(1)
        self.metrics.model_info.set_only(1, served.details.name, served.version, self.alias)
        logger.info(
            "now serving %s version %s (@%s, %d classes, on %s)%s",
            served.details.name,
            served.version,
            self.alias,
            len(served.classes),
            served.details.engine,
            "" if previous is None else f", replacing version {previous.version}",
        )
