"""Which engine serves a model version, from the setting and what registration recorded."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from baghunter.engines import AUTO, EXPORTED, KERAS
from baghunter.engines.checks import EngineCheck, recorded_checks
from baghunter.engines.runners import OnnxRunner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineChoice:
    engine: str  # the engine that serves
    reason: str  # why, in words (the service reports it)
    check: EngineCheck | None = None  # its registration check; None for Keras


def choose(setting: str, checks: Mapping[str, EngineCheck]) -> EngineChoice:
    """The engine for ``setting`` among a version's ``checks``.

    ``auto`` takes the fastest export that passed its check, else Keras. A named export
    that did not pass (or was never made) is not served either: Keras answers instead,
    and the reason says so.
    """
    if setting == KERAS:
        return EngineChoice(KERAS, "configured")
    passed = {e: c for e, c in checks.items() if c.passed and c.artifact}
    if setting in EXPORTED:
        if setting in passed:
            return EngineChoice(setting, "configured", passed[setting])
        why = checks[setting].status if setting in checks else "no export for this version"
        return EngineChoice(KERAS, f"{setting} is not servable ({why}): Keras instead")
    if setting != AUTO:
        raise ValueError(f"unknown engine {setting!r}")
    if not passed:
        statuses = "; ".join(f"{e}: {c.status}" for e, c in checks.items()) or "no exports"
        return EngineChoice(KERAS, f"auto: no export passed its check ({statuses})")
    best = max(passed.values(), key=lambda c: c.images_per_s or 0.0)
    return EngineChoice(
        best.engine,
        f"auto: the fastest checked export ({best.images_per_s or 0:.0f} images/s at "
        f"registration, {best.agreement or 0:.1%} top-1 agreement with Keras)",
        best,
    )


def engine_for(
    setting: str, tags: Mapping[str, str], run_id: str | None
) -> tuple[EngineChoice, OnnxRunner | None]:
    """The choice for a version with ``tags``, and its ready runner (None: Keras)."""
    choice = choose(setting, recorded_checks(tags))
    if choice.check is None:
        return choice, None
    if run_id is None or choice.check.artifact is None:
        return EngineChoice(KERAS, "the version has no run to hold its exports"), None
    import mlflow

    with tempfile.TemporaryDirectory(prefix="baghunter-engine-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=choice.check.artifact, dst_path=tmp
        )
        # The session reads the whole file when it is created; the copy is not needed after.
        runner = OnnxRunner(Path(local), choice.engine)
    log.info("engine %s (%s) on %s", choice.engine, choice.reason, runner.provider)
    return choice, runner
