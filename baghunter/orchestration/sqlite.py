"""Connection options for Airflow's metadata database when it is SQLite (the local stack).

SQLite lets one writer in at a time; the others wait for the lock, by default for 5 s,
then fail with "database is locked". On a 2-core machine the scheduler, the DAG processor,
the API server and several task runners write at once, and 5 s is short, so writers wait
up to a minute instead. That cannot help a transaction that read before it writes while
another wrote meanwhile: SQLite refuses that one at once, and Airflow's API answers it with
503, which a client retries. (A server database such as PostgreSQL is what a busy or
multi-machine Airflow needs; SQLite is the no-install local default.)

Airflow reads this dictionary through ``[database] sql_alchemy_connect_args``.
"""

from __future__ import annotations

from typing import Any

CONNECT_ARGS: dict[str, Any] = {"timeout": 60}
SETTING = "baghunter.orchestration.sqlite.CONNECT_ARGS"
