"""``[core] hostname_callable`` for the Celery test's workers.

Both workers run on this one machine; each names itself through its environment, so the
hostname Airflow records on a task instance tells which worker ran it.
"""

from __future__ import annotations

import os

VARIABLE = "BAGHUNTER_TEST_WORKER"


def hostname() -> str:
    return os.environ[VARIABLE]
