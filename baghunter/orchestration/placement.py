"""Where the DAGs' train tasks run: a Celery queue, an Airflow pool, a Kubernetes pod.

Training is the one stage that wants a GPU, so it alone is routed: ``BAGHUNTER_TRAIN_QUEUE``
sends it to the Celery workers listening on that queue (``airflow celery worker --queues
gpu``), and under the KubernetesExecutor ``BAGHUNTER_TRAIN_GPUS`` and
``BAGHUNTER_TRAIN_NODE_SELECTOR`` give its pod a GPU limit, a toleration for GPU nodes'
usual taint and the node labels to land on. Every other task keeps the default queue.

DAG files import this module while Airflow parses them, so it stays as light as they are:
the settings object and, only when a pod override is asked for, the Kubernetes client.
"""

from __future__ import annotations

from typing import Any

from baghunter.config import Settings, get_settings

# The container KubernetesExecutor runs a task in; a pod override names it to change it.
TASK_CONTAINER = "base"
GPU_RESOURCE = "nvidia.com/gpu"


def train_task_options(settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments for a train task's ``@task(...)``."""
    settings = settings or get_settings()
    options: dict[str, Any] = {"queue": settings.train_queue, "pool": settings.train_pool}
    pod = train_pod_override(settings)
    if pod is not None:
        options["executor_config"] = {"pod_override": pod}
    return options


def train_pod_override(settings: Settings) -> Any:
    """The train task's ``V1Pod`` override, or ``None`` when no GPU or node is asked for."""
    if not settings.train_gpus and not settings.train_node_selector:
        return None
    try:
        from kubernetes.client import models as k8s
    except ImportError as exc:
        raise RuntimeError(
            "BAGHUNTER_TRAIN_GPUS / BAGHUNTER_TRAIN_NODE_SELECTOR build a Kubernetes pod "
            "override, which needs the kubernetes client: pip install 'baghunter[kubernetes]'"
        ) from exc
    resources = None
    tolerations = None
    if settings.train_gpus:
        gpus = str(settings.train_gpus)
        # Extended resources are not overcommitted: the request must equal the limit.
        resources = k8s.V1ResourceRequirements(
            limits={GPU_RESOURCE: gpus}, requests={GPU_RESOURCE: gpus}
        )
        tolerations = [k8s.V1Toleration(key=GPU_RESOURCE, operator="Exists", effect="NoSchedule")]
    return k8s.V1Pod(
        spec=k8s.V1PodSpec(
            containers=[k8s.V1Container(name=TASK_CONTAINER, resources=resources)],
            node_selector=dict(settings.train_node_selector) or None,
            tolerations=tolerations,
        )
    )
