# syntax=docker/dockerfile:1.7
# (Dockerfile frontend 1.7: RUN --mount and COPY --chmod, both used below.)
#
# Bag Hunter images. One target per role; docker-compose.yaml builds them all, or
# `docker build --target NAME .` builds one:
#
#   airflow    Airflow 3 with the project and tensorflow-cpu. The scheduler's LocalExecutor
#              (or, under the "celery" profile, the Celery workers) runs every DAG task,
#              training included, so this image must be able to train.
#              --build-arg TENSORFLOW_VARIANT=cuda installs CUDA TensorFlow instead
#              (docker-compose.gpu.yaml does that for the scheduler and the gpu worker).
#   serve      the recognition API (`baghunter serve`), CPU TensorFlow, non-root.
#   train-gpu  the `baghunter` CLI with CUDA TensorFlow, for training runs outside Airflow.
#   mlflow     MLflow tracking server and model registry: PostgreSQL, artifacts in S3.
#
# Python packages are installed from lists that docker/requirements.py derives from
# pyproject.toml, so an image cannot drift from the project's pins; the pins in this file
# are only for what the project does not declare (base images, the PostgreSQL driver).
# CUDA TensorFlow comes from pip (`tensorflow[and-cuda]` brings the CUDA and cuDNN
# runtimes as wheels): a GPU host needs the NVIDIA driver and Container Toolkit, not a
# CUDA base image. TensorFlow's CPU wheels are x86-64 only, so the images target
# linux/amd64.

# Python's minor version is pinned (requires-python, and the Airflow image's Python);
# patch releases float so a rebuild picks up security fixes.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# Must match the apache-airflow pin of pyproject's `airflow` extra.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11

# --- shared base of the slim images --------------------------------------------------
FROM ${PYTHON_IMAGE} AS python-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    BAGHUNTER_HOME=/data/baghunter
# uid 50000, gid 0: the `airflow` user of the official Airflow image. The trainer and the
# Airflow tasks write to the same baghunter-data volume, and one owner lets both do so.
# The data home exists in the image so that Docker seeds a new volume with this owner.
RUN useradd --uid 50000 --gid 0 --create-home --shell /usr/sbin/nologin baghunter \
 && install -d -o 50000 -g 0 -m 2775 /data/baghunter
COPY --chmod=0755 docker/http_probe.py /usr/local/bin/http-probe

# --- one requirements file per image ---------------------------------------------------
# Only pyproject.toml and the helper are copied in, so the lists, and the dependency layers
# installed from them, are rebuilt when a pin changes, not when the code does.
FROM python-base AS requirements
WORKDIR /src
COPY pyproject.toml docker/requirements.py ./
RUN mkdir /reqs \
 && python requirements.py airflow train similar celery kubernetes s3 > /reqs/airflow-cpu.txt \
 && python requirements.py airflow train similar celery kubernetes s3 --cuda > /reqs/airflow-cuda.txt \
 && python requirements.py serve train:keras,tensorflow-cpu similar s3 > /reqs/serve.txt \
 && python requirements.py train s3 --cuda > /reqs/train-cuda.txt \
 && python requirements.py --no-base serve:mlflow > /reqs/mlflow.txt

# --- the project as a wheel (pure Python: one wheel serves every image) -----------------
FROM python-base AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY baghunter ./baghunter
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --no-deps --wheel-dir /wheels .

# --- MLflow tracking server -----------------------------------------------------------------
FROM python-base AS mlflow
# The project declares neither a PostgreSQL driver nor an S3 client: only the tracking
# server needs them (it proxies every artifact to the bucket).
ARG PSYCOPG2_VERSION=2.9.13
ARG BOTO3_VERSION=1.43.117
RUN --mount=type=bind,from=requirements,source=/reqs,target=/reqs \
    --mount=type=cache,target=/root/.cache/pip \
    pip install -r /reqs/mlflow.txt "psycopg2-binary==${PSYCOPG2_VERSION}" \
        "boto3==${BOTO3_VERSION}" \
 && pip check \
 && install -d -o baghunter -g 0 -m 2775 /mlflow/artifacts
# Artifacts are proxied by the server (--serve-artifacts), so clients need no access to
# this directory (compose points MLFLOW_ARTIFACTS_DESTINATION at an S3 bucket instead). The server's background job runner serves none of what this project uses
# (tracking, registry) and would start worker processes of its own; one web worker is
# plenty for a team's registry.
ENV MLFLOW_ARTIFACTS_DESTINATION=/mlflow/artifacts \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
USER baghunter
WORKDIR /home/baghunter
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=5 \
    CMD ["http-probe", "http://127.0.0.1:5000/health"]
# The backend store comes from MLFLOW_BACKEND_STORE_URI, not argv: it holds a password,
# and argv is visible to every process on the host.
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000", "--workers", "1", \
     "--serve-artifacts"]

# --- serving ---------------------------------------------------------------------------------
FROM python-base AS serve
RUN --mount=type=bind,from=requirements,source=/reqs,target=/reqs \
    --mount=type=cache,target=/root/.cache/pip \
    pip install -r /reqs/serve.txt
# --no-deps: the dependencies came from the list above; `pip check` proves it was complete.
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps /wheels/*.whl \
 && pip check
USER baghunter
WORKDIR /home/baghunter
EXPOSE 8000
# Liveness, not readiness: /healthz answers while no champion model is registered yet,
# which is the normal state of a new stack, and a restart would not change that.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["http-probe", "http://127.0.0.1:8000/healthz"]
CMD ["baghunter", "serve", "--host", "0.0.0.0", "--port", "8000"]

# --- training on a GPU, outside Airflow --------------------------------------------------------
FROM python-base AS train-gpu
RUN --mount=type=bind,from=requirements,source=/reqs,target=/reqs \
    --mount=type=cache,target=/root/.cache/pip \
    pip install -r /reqs/train-cuda.txt
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps /wheels/*.whl \
 && pip check
# The NVIDIA runtime mounts only the driver libraries a container asks for; TensorFlow
# needs the compute ones (`utility` adds nvidia-smi, for checking what was granted).
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER baghunter
WORKDIR /home/baghunter
ENTRYPOINT ["baghunter"]
CMD ["--help"]

# --- Airflow components --------------------------------------------------------------------
FROM ${AIRFLOW_IMAGE} AS airflow
# cpu: tensorflow-cpu, runs anywhere. cuda: tensorflow[and-cuda], for a GPU scheduler.
ARG TENSORFLOW_VARIANT=cpu
USER root
RUN install -d -o airflow -g 0 -m 2775 /data/baghunter
USER airflow
ENV BAGHUNTER_HOME=/data/baghunter \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# As the airflow user, per the image's documentation: packages land in its environment.
RUN --mount=type=bind,from=requirements,source=/reqs,target=/reqs \
    --mount=type=cache,target=/home/airflow/.cache/pip,uid=50000,gid=0 \
    pip install -r "/reqs/airflow-${TENSORFLOW_VARIANT}.txt"
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps /wheels/*.whl \
 && pip check
COPY --chmod=0755 docker/airflow-init.sh docker/airflow-apiserver.sh /opt/baghunter/
# Last, as DAGs change most often: editing one rebuilds only this layer.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
