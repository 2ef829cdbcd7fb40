"""Connection options for Airflow's metadata database when it is SQLite (the local stack).

SQLite lets one writer in at a time; the others wait for the lock, by default for 5 s,
then fail with "database is locked". On a 2-core machine a backfill being created while
the scheduler and several task runners write their heartbeats and states waits longer
than that: the API answered 503 and the scheduler crashed on it. Waiting up to a minute
instead turns those failures into short pauses. (A server database, such as PostgreSQL,
is what a busy or multi-machine Airflow needs; SQLite is the no-install local default.)

Airflow reads this dictionary through ``[database] sql_alchemy_connect_args``.
"""

from __future__ import annotations

from typing import Any

CONNECT_ARGS: dict[str, Any] = {"timeout": 60}
SETTING = "baghunter.orchestration.sqlite.CONNECT_ARGS"
