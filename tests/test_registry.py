"""MLflow tracking, registry and champion gate against a real SQLite-backed MLflow.

The models are tiny Keras classifiers with hand-set weights that read the mean colour of a
raw uint8 image of any size (like the real exported model, they resize internally): red
images are "alpha", blue ones "beta". That makes their accuracy known by construction, so
the gate is exercised with real models scored by really loading them back from the
registry. Where a test needs two reports with a precise relation (equal accuracy, different
macro-F1), the reports are computed from chosen predictions instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest

from baghunter import registry
from baghunter.config import Settings
from baghunter.dataset.manifest import Manifest, ManifestEntry
from baghunter.training.metrics import EvalReport, evaluate_probabilities

keras = pytest.importorskip("keras")
mlflow = pytest.importorskip("mlflow")

CLASSES = ["alpha", "beta"]
RED, BLUE, GREEN = (220, 10, 10), (10, 10, 220), (10, 220, 10)
# Kernels over the mean (r, g, b) in [0, 1], one column per class.
RIGHT = [[6.0, -6.0], [0.0, 0.0], [-6.0, 6.0]]  # red -> alpha, blue -> beta: accuracy 1
WRONG = [[-6.0, 6.0], [0.0, 0.0], [6.0, -6.0]]  # the opposite: accuracy 0
CONSTANT = [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]  # uniform output, argmax "alpha": accuracy 0.5
ENV_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def colour_model(kernel: list[list[float]]) -> keras.Model:
    """A classifier of raw uint8 images of any size by their mean colour."""
    k = len(kernel[0])
    model = keras.Sequential(
        [
            keras.Input((None, None, 3), dtype="uint8"),
            keras.layers.Resizing(8, 8),
            keras.layers.Rescaling(1 / 255),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(k, activation="softmax"),
        ]
    )
    model.layers[-1].set_weights([np.asarray(kernel, "float32"), np.zeros(k, "float32")])
    return model


def image(colour: tuple[int, int, int], height: int, width: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.uint8), (height, width, 3)).copy()


# A small test set of images of assorted sizes, balanced between the two classes.
TEST_IMAGES = [
    *(image(RED, h, w) for h, w in ((12, 20), (31, 9), (16, 16))),
    *(image(BLUE, h, w) for h, w in ((10, 27), (24, 24), (40, 13))),
]
TEST_LABELS = [0, 0, 0, 1, 1, 1]


def probabilities(model: keras.Model, batch: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(batch, training=False))


def evaluate(model: keras.Model, classes: list[str] = CLASSES) -> EvalReport:
    # One image at a time: the test images differ in size, as catalog photos do.
    probs = np.vstack([probabilities(model, img[None]) for img in TEST_IMAGES])
    return evaluate_probabilities(TEST_LABELS, probs, classes)


def report_from_predictions(y_true: list[int], y_pred: list[int]) -> EvalReport:
    return evaluate_probabilities(y_true, np.eye(len(CLASSES))[y_pred], CLASSES)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """One SQLite tracking store for the module (creating one takes seconds)."""
    with pytest.MonkeyPatch.context() as patch:
        for var in ENV_VARS:
            patch.delenv(var, raising=False)
        settings = Settings(home=tmp_path_factory.mktemp("registry"), mlflow_tracking_uri=None)
        registry.get_or_create_experiment("registry-tests", settings)
        yield settings
        # Leave MLflow unconfigured, as found, for whatever test module runs next.
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)


@pytest.fixture
def experiment_id(store: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    """Tracking pointed at the module's store (a test may have pointed it elsewhere)."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    return registry.get_or_create_experiment("registry-tests", store)


@pytest.fixture
def model_name(request: pytest.FixtureRequest) -> str:
    """A registered-model name of the test's own, so tests sharing the store never meet."""
    return "clf-" + re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")


@pytest.fixture
def register(experiment_id: str, model_name: str) -> Callable[..., registry.ModelRef]:
    """Train-free "training run": log a colour model's test report and register it."""

    def _register(
        kernel: list[list[float]],
        classes: list[str] = CLASSES,
        dataset_version: str = "ds-1",
        log_report: bool = True,
    ) -> registry.ModelRef:
        model = colour_model(kernel)
        with mlflow.start_run(experiment_id=experiment_id) as run:
            if log_report:
                registry.log_eval_report(evaluate(model, classes))
            return registry.register_model(
                model,
                run_id=run.info.run_id,
                name=model_name,
                classes=classes,
                dataset_version=dataset_version,
                image_size=8,
                input_example=image(RED, 12, 20)[None],
            )

    return _register


class Scorer:
    """The pipeline's ``score_champion``: load the URI and evaluate it on the test set."""

    def __init__(self) -> None:
        self.uris: list[str] = []

    def __call__(self, uri: str) -> EvalReport:
        self.uris.append(uri)
        loaded = registry.load_classifier(uri)
        return evaluate(loaded.model, loaded.classes)


def client() -> mlflow.MlflowClient:
    return mlflow.MlflowClient()


def champion_version(name: str) -> int:
    return int(client().get_model_version_by_alias(name, registry.CHAMPION_ALIAS).version)


# --- tracking configuration ----------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.mark.usefixtures("clean_env")
def test_tracking_defaults_to_sqlite_in_the_data_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", mlflow_tracking_uri=None)

    uri = registry.tracking(settings)

    assert uri.startswith("sqlite:///")
    assert Path(uri.removeprefix("sqlite:///")).parent == (tmp_path / "home" / "mlflow").resolve()
    assert (tmp_path / "home" / "mlflow").is_dir()
    assert mlflow.get_tracking_uri() == uri
    assert mlflow.get_registry_uri() == uri


@pytest.mark.usefixtures("clean_env")
def test_artifacts_of_any_local_sqlite_store_live_next_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not in ./mlruns of whatever directory the process happens to run in.
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "tracking" / "runs.db"
    database.parent.mkdir()
    settings = Settings(home=tmp_path / "home", mlflow_tracking_uri=f"sqlite:///{database}")

    experiment_id = registry.get_or_create_experiment("placed", settings)

    location = mlflow.MlflowClient().get_experiment(experiment_id).artifact_location
    assert location == (tmp_path / "tracking" / "artifacts").as_uri()
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.usefixtures("clean_env")
def test_env_var_overrides_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(home=tmp_path / "home", mlflow_tracking_uri=None)
    operator_uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", operator_uri)

    assert registry.tracking(settings) == operator_uri
    assert mlflow.get_tracking_uri() == operator_uri
    assert registry.tracking(settings) == operator_uri  # still the operator's on a re-call

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert registry.tracking(settings) == settings.tracking_uri


@pytest.mark.usefixtures("clean_env")
def test_a_later_call_with_other_settings_is_not_shadowed_by_the_first(tmp_path: Path) -> None:
    # MLflow exports the first URI to the environment; that must not pass for an override.
    first = Settings(home=tmp_path / "first", mlflow_tracking_uri=None)
    second = Settings(home=tmp_path / "second", mlflow_tracking_uri=None)

    registry.tracking(first)

    assert registry.tracking(second) == second.tracking_uri
    assert mlflow.get_tracking_uri() == second.tracking_uri


def test_experiment_artifacts_live_in_the_data_home(store: Settings, experiment_id: str) -> None:
    experiment = client().get_experiment(experiment_id)
    assert experiment.artifact_location == (store.mlflow_dir / "artifacts").resolve().as_uri()
    assert registry.get_or_create_experiment("registry-tests", store) == experiment_id

    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.log_dict({"where": "home"}, "probe/where.json")
    assert list((store.mlflow_dir / "artifacts").rglob("probe/where.json"))


# --- run logging helpers -------------------------------------------------------------


def test_params_are_flattened_and_long_values_truncated(experiment_id: str) -> None:
    params = {
        "epochs": 3,
        "optimizer": {"name": "adam", "lr": 0.001},
        "classes": ["alpha", "beta"],
        "notes": "x" * 7000,
    }
    with mlflow.start_run(experiment_id=experiment_id) as run:
        registry.log_params_flat(params, prefix="train.")

    logged = client().get_run(run.info.run_id).data.params
    assert logged["train.epochs"] == "3"
    assert logged["train.optimizer.name"] == "adam"
    assert float(logged["train.optimizer.lr"]) == 0.001
    assert json.loads(logged["train.classes"]) == ["alpha", "beta"]
    assert 0 < len(logged["train.notes"]) <= 6000


def test_history_of_two_phases_is_one_curve(experiment_id: str) -> None:
    head = {"loss": [1.0, 0.6], "val_accuracy": [0.5, 0.7]}
    finetune = {"loss": [0.4, 0.3, 0.2], "val_accuracy": [0.8, 0.85, 0.9]}
    with mlflow.start_run(experiment_id=experiment_id) as run:
        registry.log_history(head)
        registry.log_history(finetune, start_step=len(head["loss"]))

    history = client().get_metric_history(run.info.run_id, "loss")
    by_step = sorted((m.step, m.value) for m in history)
    assert by_step == list(enumerate(head["loss"] + finetune["loss"]))


def test_eval_report_metrics_and_artifact(experiment_id: str) -> None:
    report = evaluate(colour_model(CONSTANT))
    with mlflow.start_run(experiment_id=experiment_id) as run:
        registry.log_eval_report(report)

    metrics = client().get_run(run.info.run_id).data.metrics
    assert metrics["test_accuracy"] == pytest.approx(report.accuracy)
    assert metrics["test_macro_f1"] == pytest.approx(report.macro_f1)
    assert metrics["test_f1_beta"] == pytest.approx(report.per_class["beta"].f1)
    saved = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/eval/test_report.json")
    assert saved == json.loads(json.dumps(report.to_dict()))


def test_figure_is_logged_as_png(experiment_id: str, tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure()
    figure.add_subplot().imshow([[3, 1], [0, 2]])
    with mlflow.start_run(experiment_id=experiment_id) as run:
        registry.log_figure(figure, "plots/confusion_matrix.png")

    local = mlflow.artifacts.download_artifacts(
        f"runs:/{run.info.run_id}/plots/confusion_matrix.png", dst_path=str(tmp_path)
    )
    assert Path(local).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_manifest_is_the_runs_dataset_input(experiment_id: str, tmp_path: Path) -> None:
    entries = [
        ManifestEntry(f"/img/{i}.jpg", label, split, f"g{i}", f"{i:064x}")
        for i, (label, split) in enumerate(
            [("alpha", "train"), ("beta", "train"), ("alpha", "test"), ("beta", "val")]
        )
    ]
    manifest = Manifest.from_entries(entries, params={"min_per_class": 1})
    source = manifest.save(tmp_path / "manifest.json")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        registry.log_manifest_input(manifest, source)

    logged = client().get_run(run.info.run_id)
    (dataset_input,) = logged.inputs.dataset_inputs
    assert dataset_input.dataset.digest == manifest.version
    assert manifest.version in dataset_input.dataset.name
    assert json.loads(dataset_input.dataset.profile)["num_rows"] == len(entries)
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"
    assert logged.data.tags["dataset_version"] == manifest.version
    saved = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/dataset/manifest.json")
    assert (
        Manifest(
            entries=[ManifestEntry(**e) for e in saved["entries"]], classes=saved["classes"]
        ).version
        == manifest.version
    )


@pytest.mark.usefixtures("experiment_id")
def test_logging_helpers_refuse_to_start_a_run_of_their_own() -> None:
    with pytest.raises(RuntimeError, match="no active MLflow run"):
        registry.log_history({"loss": [1.0]})
    assert mlflow.active_run() is None


# --- registering and loading ---------------------------------------------------------


def test_register_records_signature_metadata_and_tags(
    register: Callable[..., registry.ModelRef], model_name: str
) -> None:
    ref = register(RIGHT, dataset_version="ds-42")

    assert (ref.name, ref.version, ref.uri) == (model_name, 1, f"models:/{model_name}/1")
    info = mlflow.models.get_model_info(ref.uri)
    assert info.run_id == ref.run_id
    (spec,) = info.signature.inputs.inputs
    assert (spec.type, spec.shape) == (np.dtype("uint8"), (-1, -1, -1, 3))
    assert info.metadata["classes"] == CLASSES
    tags = client().get_model_version(model_name, "1").tags
    assert json.loads(tags["classes"]) == CLASSES
    assert tags["dataset_version"] == "ds-42"
    assert tags["image_size"] == "8"
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", tags["git_commit"])
    assert register(RIGHT).version == 2


def test_register_rejects_a_class_list_that_does_not_match_the_outputs(
    register: Callable[..., registry.ModelRef],
) -> None:
    with pytest.raises(ValueError, match="3 classes"):
        register(RIGHT, classes=["alpha", "beta", "gamma"], log_report=False)


def test_register_resumes_the_named_run_but_never_logs_into_another(
    experiment_id: str, model_name: str
) -> None:
    model = colour_model(RIGHT)
    with mlflow.start_run(experiment_id=experiment_id) as finished:
        pass
    kwargs = dict(
        name=model_name,
        classes=CLASSES,
        dataset_version="ds-1",
        image_size=8,
        input_example=image(BLUE, 5, 7)[None],
    )

    ref = registry.register_model(model, run_id=finished.info.run_id, **kwargs)
    assert client().get_model_version(model_name, str(ref.version)).run_id == finished.info.run_id

    with mlflow.start_run(experiment_id=experiment_id), pytest.raises(RuntimeError):
        registry.register_model(model, run_id=finished.info.run_id, **kwargs)


def test_load_champion_in_process_predicts_raw_images_of_any_size(
    register: Callable[..., registry.ModelRef], model_name: str
) -> None:
    register(CONSTANT)
    right = register(RIGHT)
    client().set_registered_model_alias(model_name, "champion", str(right.version))

    loaded = registry.load_classifier(f"models:/{model_name}@champion")

    assert (loaded.name, loaded.version, loaded.run_id) == (model_name, 2, right.run_id)
    assert (loaded.classes, loaded.image_size) == (CLASSES, 8)
    for picture, expected in ((image(RED, 20, 30), "alpha"), (image(BLUE, 57, 11), "beta")):
        probs = probabilities(loaded.model, picture[None])[0]
        assert loaded.classes[int(probs.argmax())] == expected


def test_load_by_version_and_by_run(
    register: Callable[..., registry.ModelRef], model_name: str
) -> None:
    first = register(CONSTANT)
    register(RIGHT)

    by_version = registry.load_classifier(f"models:/{model_name}/1")
    by_run = registry.load_classifier(f"runs:/{first.run_id}/{registry.MODEL_ARTIFACT}")

    assert (by_version.version, by_version.run_id) == (1, first.run_id)
    assert (by_run.name, by_run.version, by_run.run_id) == (None, None, first.run_id)
    assert by_run.classes == CLASSES
    blue = image(BLUE, 9, 9)[None]
    # Version 1 is the constant model: it cannot tell blue from red.
    assert np.allclose(probabilities(by_version.model, blue), 0.5)


def test_missing_alias_version_or_model_is_model_not_found(
    register: Callable[..., registry.ModelRef], model_name: str
) -> None:
    register(RIGHT)
    for uri in (
        f"models:/{model_name}@champion",
        f"models:/{model_name}/7",
        "models:/no-such-model@champion",
    ):
        with pytest.raises(registry.ModelNotFound):
            registry.load_classifier(uri)


def _in_fresh_process(script: str, model_uri: str, cwd: Path) -> Any:
    """Run ``script`` (argv[1] = the model URI) in a new interpreter; its last line as JSON.

    The child sees only the tracking URI: nothing imported or configured in this test
    process can help it load the model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "BAGHUNTER_"))}
    env["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()
    result = subprocess.run(
        [sys.executable, "-c", script, model_uri],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_fresh_process_loads_the_champion_from_the_registry_alone(
    register: Callable[..., registry.ModelRef], model_name: str, tmp_path: Path
) -> None:
    register(CONSTANT)
    right = register(RIGHT)
    client().set_registered_model_alias(model_name, "champion", str(right.version))
    script = (
        "import json, sys\n"
        "import keras\n"
        "import numpy as np\n"
        "from baghunter.registry import load_classifier\n"
        "m = load_classifier(sys.argv[1])\n"
        "blue = np.zeros((1, 33, 21, 3), np.uint8); blue[..., 2] = 200\n"
        "probs = keras.ops.convert_to_numpy(m.model(blue, training=False))[0]\n"
        "print(json.dumps({'version': m.version, 'classes': m.classes,"
        " 'predicted': m.classes[int(probs.argmax())]}))\n"
    )
    answer = _in_fresh_process(script, f"models:/{model_name}@champion", tmp_path)
    assert answer == {"version": right.version, "classes": CLASSES, "predicted": "beta"}


# --- the champion gate ---------------------------------------------------------------


def test_gate_promotes_when_there_is_no_champion(
    register: Callable[..., registry.ModelRef], model_name: str
) -> None:
    candidate = register(CONSTANT)
    scorer = Scorer()

    decision = registry.champion_gate(
        name=model_name,
        candidate=candidate,
        candidate_report=evaluate(colour_model(CONSTANT)),
        score_champion=scorer,
    )

    assert decision.promoted
    assert decision.reason == "no champion yet"
    assert decision.previous_champion_version is None
    assert decision.champion_metrics is None
    assert scorer.uris == []
    assert champion_version(model_name) == candidate.version


def test_gate_promotes_a_better_candidate_and_records_why(
    register: Callable[..., registry.ModelRef], model_name: str
) -> None:
    old = register(CONSTANT)
    client().set_registered_model_alias(model_name, "champion", str(old.version))
    candidate = register(RIGHT)
    candidate_report = evaluate(colour_model(RIGHT))
    scorer = Scorer()

    decision = registry.champion_gate(
        name=model_name,
        candidate=candidate,
        candidate_report=candidate_report,
        score_champion=scorer,
    )

    assert decision.promoted
    assert scorer.uris == [f"models:/{model_name}@champion"]
    assert champion_version(model_name) == candidate.version
    assert decision.previous_champion_version == old.version
    assert decision.champion_metrics is not None
    assert decision.champion_metrics["accuracy"] == pytest.approx(0.5)
    run = client().get_run(candidate.run_id)
    assert run.data.tags["promotion.decision"] == "promoted"
    assert run.data.tags["promotion.reason"] == decision.reason
    assert run.data.metrics["candidate_accuracy"] == pytest.approx(candidate_report.accuracy)
    assert run.data.metrics["champion_accuracy"] == pytest.approx(0.5)
    assert "champion_macro_f1" in run.data.metrics
    version_tags = client().get_model_version(model_name, str(candidate.version)).tags
    assert version_tags["promotion.decision"] == "promoted"
    assert json.loads(json.dumps(decision.to_dict()))["candidate_version"] == candidate.version


def test_gate_keeps_the_champion_when_the_candidate_is_worse(
    register: Callable[..., registry.ModelRef], model_name: str
) -> None:
    champion = register(RIGHT)
    client().set_registered_model_alias(model_name, "champion", str(champion.version))
    candidate = register(WRONG)

    decision = registry.champion_gate(
        name=model_name,
        candidate=candidate,
        candidate_report=evaluate(colour_model(WRONG)),
        score_champion=Scorer(),
    )

    assert not decision.promoted
    assert champion_version(model_name) == champion.version
    assert client().get_run(candidate.run_id).data.tags["promotion.decision"] == "kept"
    version_tags = client().get_model_version(model_name, str(candidate.version)).tags
    assert version_tags["promotion.decision"] == "kept"


# Same accuracy (4 of 6), different macro-F1: always "alpha" vs one error in each class.
Y_TRUE = [0, 0, 0, 0, 1, 1]
ALL_ALPHA = [0, 0, 0, 0, 0, 0]
BALANCED_ERRORS = [0, 0, 0, 1, 1, 0]


@pytest.mark.parametrize(
    ("candidate_pred", "champion_pred", "promoted"),
    [(BALANCED_ERRORS, ALL_ALPHA, True), (ALL_ALPHA, BALANCED_ERRORS, False)],
    ids=["higher-macro-f1-wins", "lower-macro-f1-loses"],
)
def test_equal_accuracy_is_settled_by_macro_f1(
    register: Callable[..., registry.ModelRef],
    model_name: str,
    candidate_pred: list[int],
    champion_pred: list[int],
    promoted: bool,
) -> None:
    candidate_report = report_from_predictions(Y_TRUE, candidate_pred)
    champion_report = report_from_predictions(Y_TRUE, champion_pred)
    assert candidate_report.accuracy == pytest.approx(champion_report.accuracy)
    assert candidate_report.macro_f1 != pytest.approx(champion_report.macro_f1)
    champion = register(CONSTANT)
    client().set_registered_model_alias(model_name, "champion", str(champion.version))
    candidate = register(CONSTANT)

    decision = registry.champion_gate(
        name=model_name,
        candidate=candidate,
        candidate_report=candidate_report,
        score_champion=lambda uri: champion_report,
    )

    assert decision.promoted is promoted
    expected = candidate.version if promoted else champion.version
    assert champion_version(model_name) == expected


def test_gate_promotes_without_scoring_a_champion_of_another_class_set(
    register: Callable[..., registry.ModelRef], model_name: str
) -> None:
    champion = register(RIGHT)
    client().set_registered_model_alias(model_name, "champion", str(champion.version))
    three = ["alpha", "beta", "gamma"]
    kernel = [[6.0, -6.0, 0.0], [0.0, 0.0, 6.0], [-6.0, 6.0, 0.0]]
    candidate = register(kernel, classes=three)
    scorer = Scorer()

    decision = registry.champion_gate(
        name=model_name,
        candidate=candidate,
        candidate_report=evaluate(colour_model(kernel), three),
        score_champion=scorer,
    )

    assert decision.promoted
    assert "class set" in decision.reason
    assert scorer.uris == []
    assert decision.champion_metrics is None
    assert champion_version(model_name) == candidate.version


def test_gate_promotes_when_the_champion_cannot_be_scored(
    register: Callable[..., registry.ModelRef], model_name: str
) -> None:
    champion = register(RIGHT)
    client().set_registered_model_alias(model_name, "champion", str(champion.version))
    candidate = register(WRONG)

    def unloadable(uri: str) -> EvalReport:
        raise OSError(f"artifacts of {uri} are gone")

    decision = registry.champion_gate(
        name=model_name,
        candidate=candidate,
        candidate_report=evaluate(colour_model(WRONG)),
        score_champion=unloadable,
    )

    assert decision.promoted
    assert "OSError" in decision.reason
    assert champion_version(model_name) == candidate.version


def test_gate_promotes_when_the_champions_artifacts_are_gone(
    register: Callable[..., registry.ModelRef], model_name: str
) -> None:
    champion = register(RIGHT)
    client().set_registered_model_alias(model_name, "champion", str(champion.version))
    candidate = register(WRONG)
    source = client().get_model_version(model_name, str(champion.version)).source
    logged = client().get_logged_model(source.removeprefix("models:/"))
    shutil.rmtree(Path(urlparse(logged.artifact_location).path))
    scorer = Scorer()

    decision = registry.champion_gate(
        name=model_name,
        candidate=candidate,
        candidate_report=evaluate(colour_model(WRONG)),
        score_champion=scorer,
    )

    assert decision.promoted
    assert "could not be scored" in decision.reason
    assert scorer.uris == []
    assert champion_version(model_name) == candidate.version


def test_gate_rerun_for_the_current_champion_changes_nothing(
    register: Callable[..., registry.ModelRef], model_name: str
) -> None:
    candidate = register(RIGHT)
    report = evaluate(colour_model(RIGHT))
    first = registry.champion_gate(
        name=model_name, candidate=candidate, candidate_report=report, score_champion=Scorer()
    )
    scorer = Scorer()

    again = registry.champion_gate(
        name=model_name, candidate=candidate, candidate_report=report, score_champion=scorer
    )

    assert first.promoted and not again.promoted
    assert scorer.uris == []
    assert champion_version(model_name) == candidate.version


def test_champion_info(register: Callable[..., registry.ModelRef], model_name: str) -> None:
    assert registry.champion_info(model_name) is None  # no such model yet
    first = register(RIGHT)
    assert registry.champion_info(model_name) is None  # a model, but no champion

    registry.champion_gate(
        name=model_name,
        candidate=first,
        candidate_report=evaluate(colour_model(RIGHT)),
        score_champion=Scorer(),
    )
    info = registry.champion_info(model_name)

    assert info is not None
    assert (info["version"], info["run_id"]) == (first.version, first.run_id)
    assert info["uri"] == first.uri
    assert json.loads(info["tags"]["classes"]) == CLASSES
    assert info["tags"]["promotion.decision"] == "promoted"
    assert info["metrics"]["test_accuracy"] == pytest.approx(1.0)
    assert all(key.startswith("test_") for key in info["metrics"])


@pytest.mark.slow
def test_fresh_process_loads_a_model_with_the_vgg16_preprocessing_layer(
    experiment_id: str, model_name: str, tmp_path: Path
) -> None:
    """The serving process imports nothing but the registry before loading the champion."""
    from baghunter.training.backbones import preprocess_layer

    model = keras.Sequential(
        [
            keras.Input((None, None, 3), dtype="uint8"),
            keras.layers.Resizing(8, 8, name="resize"),
            preprocess_layer("vgg16"),  # a custom, registered layer
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    sample = image(RED, 12, 20)[None]
    expected = keras.ops.convert_to_numpy(model(sample, training=False))[0].tolist()
    with mlflow.start_run(experiment_id=experiment_id) as run:
        ref = registry.register_model(
            model,
            run_id=run.info.run_id,
            name=model_name,
            classes=["a", "b"],
            dataset_version="ds-1",
            image_size=8,
            input_example=sample,
        )
    script = (
        "import json, sys\n"
        "import keras, numpy as np\n"
        "from baghunter.registry import load_classifier\n"
        "m = load_classifier(sys.argv[1])\n"
        "x = np.zeros((1, 12, 20, 3), np.uint8); x[..., 0] = 200\n"
        "print(json.dumps(keras.ops.convert_to_numpy(m.model(x, training=False))[0].tolist()))\n"
    )
    answer = _in_fresh_process(script, ref.uri, tmp_path)
    assert answer == pytest.approx(expected, abs=1e-5)


def test_experiments_open_on_their_training_runs(store: Settings) -> None:
    # MLflow 3's UI picks an experiment's landing page from this tag (GenAI traces or runs).
    made = registry.get_or_create_experiment("kind-new", store)
    older = client().create_experiment("kind-old")  # as a home made before the tag existed

    registry.get_or_create_experiment("kind-old", store)

    for experiment_id in (made, older):
        tags = client().get_experiment(experiment_id).tags
        assert tags["mlflow.experimentKind"] == "custom_model_development"


def test_serving_loads_only_the_native_keras_format(experiment_id: str, model_name: str) -> None:
    # Someone with registry write access registers an exported SavedModel (a TensorFlow
    # graph, whose ops may touch files) under the served name: it is refused, not run.
    from mlflow.models import infer_signature

    model = colour_model(RIGHT)
    sample = image(BLUE, 5, 7)[None]
    signature = infer_signature(sample, keras.ops.convert_to_numpy(model(sample)))
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.keras.log_model(
            model,
            name="exported",
            registered_model_name=model_name,
            save_exported_model=True,
            signature=signature,
            metadata={"classes": CLASSES, "image_size": 8},
        )
    with pytest.raises(registry.UntrustedModelFormat, match="exported SavedModel"):
        registry.load_classifier(f"models:/{model_name}/{info.registered_model_version}")

    with mlflow.start_run(experiment_id=experiment_id) as finished:
        pass
    native = registry.register_model(
        model,
        run_id=finished.info.run_id,
        name=model_name,
        classes=CLASSES,
        dataset_version="ds-1",
        image_size=8,
        input_example=image(BLUE, 5, 7)[None],
    )
    assert registry.load_classifier(native.uri).classes == CLASSES
