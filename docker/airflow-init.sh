#!/usr/bin/env bash
# One-shot setup run by the compose service `airflow-init`; every Airflow component waits
# for it to exit 0 (`condition: service_completed_successfully`). It
#   1. refuses to go on when a required setting is missing, still a placeholder, or
#      malformed, naming all of them at once: components started without them fail later
#      and far less legibly (a task rejected with 403 by the execution API because the JWT
#      secret is unset, for example);
#   2. checks the shared data home is writable, so a volume with the wrong owner is
#      reported here rather than as a failed download task hours later;
#   3. migrates the metadata database. The image's own `_AIRFLOW_DB_MIGRATE` ignores a
#      failed migration; here it fails the container and so keeps the stack down.
# The image's entrypoint has already waited for the database (`airflow db check`).
set -euo pipefail

required=(
  AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
  AIRFLOW__CORE__FERNET_KEY
  AIRFLOW__API_AUTH__JWT_SECRET
  AIRFLOW__API__SECRET_KEY
  AIRFLOW__CORE__EXECUTION_API_SERVER_URL
  AIRFLOW_CONN_MONGO_DEFAULT
  BAGHUNTER_HOME
)
missing=()
for name in "${required[@]}"; do
  [[ -n "${!name:-}" ]] || missing+=("${name}")
done
if (( ${#missing[@]} )); then
  echo "airflow-init: missing required settings: ${missing[*]} (see .env.example)" >&2
  exit 1
fi

# .env.example marks required secrets with this placeholder; a copy of it passes compose's
# "is it set" check, so catch it here rather than run a stack with published defaults.
placeholder="change-me"
for name in "${required[@]}"; do
  if [[ "${!name}" == *"${placeholder}"* ]]; then
    missing+=("${name}")
  fi
done
if (( ${#missing[@]} )); then
  echo "airflow-init: still set to the ${placeholder} placeholder: ${missing[*]}" >&2
  exit 1
fi

# A malformed key is otherwise reported only when a connection is first saved from the UI.
# The value may list several comma-separated keys (Airflow's key rotation); each must be valid.
if ! python -c '
import os
from cryptography.fernet import Fernet
for key in os.environ["AIRFLOW__CORE__FERNET_KEY"].split(","):
    Fernet(key.strip())
' 2>/dev/null; then
  echo "airflow-init: AIRFLOW__CORE__FERNET_KEY is not a Fernet key (32 bytes, URL-safe base64)" >&2
  exit 1
fi

# MongoHook only recognises its own connection type; a mongodb:// URI defines a connection
# of type "mongodb" that the hook refuses at the first task.
if [[ "${AIRFLOW_CONN_MONGO_DEFAULT}" != mongo://* ]]; then
  echo "airflow-init: AIRFLOW_CONN_MONGO_DEFAULT must start with mongo:// (not mongodb://)" >&2
  exit 1
fi

if ! mkdir -p "${BAGHUNTER_HOME}" 2>/dev/null || [[ ! -w "${BAGHUNTER_HOME}" ]]; then
  echo "airflow-init: ${BAGHUNTER_HOME} is not writable by uid $(id -u) gid $(id -g)" >&2
  exit 1
fi

airflow db migrate
echo "airflow-init: metadata database migrated; data home ${BAGHUNTER_HOME} is writable"
