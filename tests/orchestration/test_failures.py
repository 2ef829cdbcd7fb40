"""The one rule for task failures that a retry cannot fix."""

from __future__ import annotations

import pytest


def test_only_faults_no_retry_can_fix_skip_the_retries() -> None:
    from airflow.exceptions import AirflowFailException

    from baghunter.orchestration.failures import without_retries

    with pytest.raises(AirflowFailException, match="min_confidence must be"):
        with without_retries(ValueError):
            raise ValueError("min_confidence must be in (0, 1)")
    with pytest.raises(ConnectionError):  # a store that is down: the retries may see it up
        with without_retries(ValueError):
            raise ConnectionError("store unavailable")
