"""Where the train tasks run: the Celery queue, the pool, the Kubernetes pod override."""

from __future__ import annotations

import pytest

from tests.orchestration.conftest import DAGS_DIR

pytestmark = pytest.mark.airflow


def _training_dags(monkeypatch, **env: str):
    """Parse the training DAGs afresh with ``env`` set, as a worker configured so would."""
    from airflow.models import DagBag

    from baghunter.config import get_settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        bag = DagBag(dag_folder=str(DAGS_DIR))
    finally:
        get_settings.cache_clear()
    assert bag.import_errors == {}
    return bag.dags["brand_training"], bag.dags["attribute_training"]


def test_only_the_train_tasks_go_to_the_training_queue(monkeypatch) -> None:
    for dag in _training_dags(monkeypatch, BAGHUNTER_TRAIN_QUEUE="gpu"):
        queues = {task.task_id: task.queue for task in dag.tasks}
        assert queues.pop("train") == "gpu", dag.dag_id
        assert set(queues.values()) == {"default"}, dag.dag_id
        assert dag.get_task("train").executor_config == {}  # no pod override unless asked


def test_the_train_pod_override_asks_for_gpus_and_nodes(monkeypatch) -> None:
    from kubernetes.client import ApiClient

    brand, attributes = _training_dags(
        monkeypatch,
        BAGHUNTER_TRAIN_GPUS="2",
        BAGHUNTER_TRAIN_NODE_SELECTOR='{"cloud.google.com/gke-accelerator": "nvidia-l4"}',
    )
    for dag in (brand, attributes):
        pod = dag.get_task("train").executor_config["pod_override"]
        spec = ApiClient().sanitize_for_serialization(pod)["spec"]
        # KubernetesExecutor merges an override into its template by container name.
        (container,) = spec["containers"]
        assert container["name"] == "base"
        assert container["resources"] == {
            "limits": {"nvidia.com/gpu": "2"},
            "requests": {"nvidia.com/gpu": "2"},
        }
        assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
        assert spec["tolerations"] == [
            {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}
        ]
        for task in dag.tasks:
            if task.task_id != "train":
                assert not task.executor_config, f"{dag.dag_id}.{task.task_id}"
    # The serialized DAG (what the scheduler hands the executor) keeps the override.
    from airflow.serialization.serialized_objects import DagSerialization

    served = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(brand))
    pod = served.get_task("train").executor_config["pod_override"]
    assert pod.spec.containers[0].resources.limits == {"nvidia.com/gpu": "2"}


def test_a_node_selector_alone_adds_no_gpu(monkeypatch) -> None:
    from baghunter.config import Settings
    from baghunter.orchestration.placement import train_pod_override

    pod = train_pod_override(Settings(train_node_selector={"pool": "big-memory"}))
    assert pod.spec.node_selector == {"pool": "big-memory"}
    assert pod.spec.containers[0].resources is None and pod.spec.tolerations is None
    assert train_pod_override(Settings()) is None
