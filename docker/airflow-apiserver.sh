#!/usr/bin/env bash
# Start the Airflow API server (UI, REST API and the execution API tasks report to) with
# the admin password taken from the environment.
#
# Airflow 3's SimpleAuthManager reads its users from AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS
# and their passwords from a JSON file; a user missing from the file gets a random password
# that is printed to the log. Writing the file from AIRFLOW_ADMIN_PASSWORD makes the login
# the one in .env, and only this container ever holds it: the scheduler, which runs task
# code, never sees the admin password.
set -euo pipefail

: "${AIRFLOW_ADMIN_USER:?AIRFLOW_ADMIN_USER is not set}"
: "${AIRFLOW_ADMIN_PASSWORD:?AIRFLOW_ADMIN_PASSWORD is not set}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?the passwords file path is not set}"
if [[ "${AIRFLOW_ADMIN_PASSWORD}" == *change-me* ]]; then
  echo "airflow-apiserver: AIRFLOW_ADMIN_PASSWORD is still the .env.example placeholder" >&2
  exit 1
fi

# Readable by this user only (the umask is confined to the subshell, so the server keeps the
# image's group-writable default); rewritten on every start so a changed .env takes effect.
(umask 077 && python - <<'PY'
import json
import os

path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
with open(path, "w", encoding="utf-8") as file:
    json.dump({os.environ["AIRFLOW_ADMIN_USER"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}, file)
PY
)
unset AIRFLOW_ADMIN_PASSWORD

exec airflow api-server "$@"
