"""The one rule for task failures that a retry cannot fix."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def without_retries(*errors: type[Exception]) -> Iterator[None]:
    """Fail the task at once, without its retries, when the block raises one of ``errors``.

    For faults of configuration or of the catalog itself (an invalid threshold, weights
    that cannot be built, too few photos to train on): a retry minutes later meets the
    same settings and the same catalog, and would only delay the operator's fix.
    """
    try:
        yield
    except errors as exc:
        from airflow.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc
