"""The deployment files agree with each other and with the code they deploy.

No Docker engine is needed: the compose files are read as YAML and interpolated the way
Compose does it, the Dockerfile is parsed into its stages, and the helper scripts the
images run (requirements lists, health probe, Airflow start-up) are executed directly.
When a Compose CLI is installed it also validates the files (the GPU override merged in)
and shows that a missing secret stops it; only that part is skipped when there is none.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from baghunter.config import Settings
from baghunter.local.sample.server import Reply, RouteServer

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yaml"
GPU_OVERRIDE = REPO / "docker-compose.gpu.yaml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERIGNORE = REPO / ".dockerignore"
DOCKER_DIR = REPO / "docker"
PLACEHOLDER = "change-me"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a literal $.
_REFERENCE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


# --- reading the files -----------------------------------------------------------------------


class MissingVariable(Exception):
    """A ${NAME:?message} reference whose variable is unset or empty."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """Substitute variables in ``text`` with Compose's rules."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        value = env.get(name)
        present = bool(value) if op and op.startswith(":") else value is not None
        if op and op.endswith("?") and not present:
            raise MissingVariable(f"{name}: {arg}")
        if op and op.endswith("-") and not present:
            return str(arg)
        return value or ""

    return _REFERENCE.sub(substitute, text)


def strings(node: Any) -> Iterator[str]:
    """Every string value in a parsed YAML document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def references(document: Any) -> list[re.Match[str]]:
    """Every ${...} reference in the document's values."""
    return [m for s in strings(document) for m in _REFERENCE.finditer(s) if m.group("name")]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as Compose reads an --env-file (quotes around a value removed)."""
    env: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip().strip("'\"")
    return env


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its (INSTRUCTION, arguments) list, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    stages: dict[str, list[tuple[str, str]]] = {"": []}  # "": the ARGs before the first FROM
    current = ""
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, arguments = line.strip().partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            match = re.search(r"\s+AS\s+(\S+)\s*$", arguments, re.IGNORECASE)
            assert match, f"every stage is named: {line!r}"
            current = match.group(1)
            stages[current] = []
        stages[current].append((instruction, arguments.strip()))
    return stages


def pyproject_extra(extra: str) -> list[str]:
    """The requirement lines of one of pyproject's extras."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return list(project["optional-dependencies"][extra])


def stage_args(stage: list[tuple[str, str]]) -> dict[str, str]:
    """The ARGs a stage declares, with their defaults."""
    args = (arguments.partition("=") for instruction, arguments in stage if instruction == "ARG")
    return {name: default for name, _, default in args}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def gpu_override() -> dict[str, Any]:
    return yaml.safe_load(GPU_OVERRIDE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def stages() -> dict[str, list[tuple[str, str]]]:
    return dockerfile_stages()


def service_env(service: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    """A service's environment as the container would see it."""
    variables = service.get("environment", {})
    return {key: interpolate(str(value), env) for key, value in variables.items()}


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BAGHUNTER_* variable of the test process leaks into a Settings under test."""
    for key in list(os.environ):
        if key.startswith("BAGHUNTER_"):
            monkeypatch.delenv(key)


# --- variables and secrets -------------------------------------------------------------------


def test_env_example_documents_exactly_the_variables_compose_reads(
    compose: dict[str, Any], gpu_override: dict[str, Any], example_env: dict[str, str]
) -> None:
    used = {m.group("name") for doc in (compose, gpu_override) for m in references(doc)}
    assert used - example_env.keys() == set(), "read by compose, missing from .env.example"
    assert example_env.keys() - used == set(), "in .env.example, read by nothing"


def test_required_variables_are_the_placeholders_and_always_fail_loudly(
    compose: dict[str, Any], example_env: dict[str, str]
) -> None:
    required = {name for name, value in example_env.items() if value == PLACEHOLDER}
    assert required, ".env.example marks the secrets to set"
    for match in references(compose):
        if match.group("name") in required:
            # Every use, not just one: an empty password in a URI is not an error in Compose.
            assert match.group("op") == ":?", f"{match.group(0)} must use :? (required)"
        else:
            assert match.group("op") in {":-", "-"}, f"{match.group(0)} needs a default"


def test_a_missing_secret_stops_interpolation(
    services: dict[str, dict[str, Any]], example_env: dict[str, str]
) -> None:
    env = {k: v for k, v in example_env.items() if k != "POSTGRES_PASSWORD"}
    with pytest.raises(MissingVariable, match="POSTGRES_PASSWORD"):
        service_env(services["postgres"], env)


# --- compose environment vs the settings the code reads ----------------------------------


def test_baghunter_variables_name_real_settings(services: dict[str, dict[str, Any]]) -> None:
    fields = {f"BAGHUNTER_{name.upper()}" for name in Settings.model_fields}
    unknown = {
        f"{name}: {key}"
        for name, service in services.items()
        for key in service.get("environment", {})
        if key.startswith("BAGHUNTER_") and key not in fields
    }
    assert unknown == set(), "BAGHUNTER_* variables that no Settings field reads"


@pytest.mark.usefixtures("clean_environ")
@pytest.mark.parametrize("only_required", [False, True], ids=["env-example", "defaults"])
def test_each_service_environment_is_valid_settings(
    services: dict[str, dict[str, Any]],
    example_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    only_required: bool,
) -> None:
    # Both the values .env.example suggests and the compose file's own defaults, used when
    # a variable is left out of .env, must make settings the code accepts.
    host_env = {k: v for k, v in example_env.items() if not only_required or v == PLACEHOLDER}
    checked = 0
    for name, service in services.items():
        env = service_env(service, host_env)
        ours = {k: v for k, v in env.items() if k.startswith("BAGHUNTER_")}
        if not ours:
            continue
        with monkeypatch.context() as patch:
            for key, value in ours.items():
                patch.setenv(key, value)
            settings = Settings(_env_file=None)  # type: ignore[call-arg]
        if "MLFLOW_TRACKING_URI" in env:
            # The same registry for MLflow's tools and for ours, not a SQLite file apiece.
            assert settings.tracking_uri == env["MLFLOW_TRACKING_URI"], name
        checked += 1
    assert checked >= 3, "the Airflow services, serving and the trainer all configure Bag Hunter"


@pytest.mark.usefixtures("clean_environ")
def test_env_example_is_a_valid_settings_file() -> None:
    # Copied to .env it is also what the CLI on the host reads (Settings' env_file).
    settings = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    assert settings.sources == []


def test_mongo_uris_use_each_clients_scheme(
    services: dict[str, dict[str, Any]], example_env: dict[str, str]
) -> None:
    seen: set[str] = set()
    for service in services.values():
        for key, value in service_env(service, example_env).items():
            if key.startswith("AIRFLOW_CONN_MONGO"):
                assert urlsplit(value).scheme == "mongo", f"{key}: MongoHook needs mongo://"
                seen.add(key)
            elif key == "BAGHUNTER_MONGO_URI":
                assert urlsplit(value).scheme == "mongodb", f"{key}: pymongo needs mongodb://"
                seen.add(key)
    assert seen == {"AIRFLOW_CONN_MONGO_DEFAULT", "BAGHUNTER_MONGO_URI"}


def test_every_url_in_the_environment_points_at_a_service(
    services: dict[str, dict[str, Any]], example_env: dict[str, str]
) -> None:
    for name, service in services.items():
        for key, value in service_env(service, example_env).items():
            if "://" in value:
                host = urlsplit(value).hostname
                assert host in services, f"{name}: {key} points at {host!r}, not a service"


# --- health, restarts and start order -----------------------------------------------------


def is_one_shot(service: dict[str, Any]) -> bool:
    return service["restart"] == "no"


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        assert "restart" in service, f"{name} states its restart policy"
        if not is_one_shot(service):
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_every_dependency_waits_on_a_condition_the_target_can_meet(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on as a list has no conditions"
        for target, spec in depends_on.items():
            condition = spec.get("condition")
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}'s health"
            elif condition == "service_completed_successfully":
                assert is_one_shot(services[target]), f"{name} waits for {target} to exit"
            else:
                pytest.fail(f"{name} -> {target}: condition {condition!r}")


def test_airflow_services_share_the_common_definition(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    common = compose["x-airflow-common"]
    airflow = {name: s for name, s in services.items() if name.startswith("airflow-")}
    assert {"airflow-init", "airflow-apiserver", "airflow-scheduler"} <= airflow.keys()
    for name, service in airflow.items():
        assert service["image"] == common["image"], name
        assert service["build"] == common["build"], name
        assert service["volumes"] == common["volumes"], name
        # A component may add variables, never change a shared one (the JWT secret above all).
        shared = {k: service["environment"].get(k) for k in common["environment"]}
        assert shared == common["environment"], name


def test_only_the_apiserver_holds_the_admin_password(services: dict[str, dict[str, Any]]) -> None:
    holders = {
        n for n, s in services.items() if "AIRFLOW_ADMIN_PASSWORD" in s.get("environment", {})
    }
    assert holders == {"airflow-apiserver"}


# --- Dockerfile and build context ------------------------------------------------------------


def build_specs(
    services: dict[str, dict[str, Any]], gpu_override: dict[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(service, build section) for the base file and for the base merged with the override."""
    for name, service in services.items():
        if "build" in service:
            yield name, service["build"]
    for name, service in gpu_override["services"].items():
        if "build" in service:
            merged = {**services[name].get("build", {}), **service["build"]}
            yield f"{name} (gpu)", merged


def test_build_targets_and_args_exist_in_the_dockerfile(
    services: dict[str, dict[str, Any]],
    gpu_override: dict[str, Any],
    stages: dict[str, list[tuple[str, str]]],
) -> None:
    specs = list(build_specs(services, gpu_override))
    assert specs
    for name, build in specs:
        assert build["target"] in stages, f"{name}: no stage {build['target']!r}"
        declared = stage_args(stages[build["target"]])
        for arg in build.get("args", {}):
            assert arg in declared, f"{name}: stage {build['target']} has no ARG {arg}"


def test_airflow_base_image_matches_the_pinned_airflow(
    stages: dict[str, list[tuple[str, str]]],
) -> None:
    pin = next(r for r in pyproject_extra("airflow") if r.startswith("apache-airflow=="))
    image = stage_args(stages[""])["AIRFLOW_IMAGE"]
    assert image.startswith(f"apache/airflow:{pin.removeprefix('apache-airflow==')}-python3.11")


def test_dockerignore_lets_in_every_copied_path(stages: dict[str, list[tuple[str, str]]]) -> None:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    assert "*" in lines, "an allow-list: nothing enters the context unless named"
    allowed = {line[1:].strip().rstrip("/") for line in lines if line.startswith("!")}
    for stage in stages.values():
        for instruction, arguments in stage:
            words = arguments.split()
            if instruction != "COPY" or any(w.startswith("--from") for w in words):
                continue
            sources = [w for w in words[:-1] if not w.startswith("--")]
            for source in sources:
                top = source.split("/")[0]
                assert top in allowed, f"COPY {source}: excluded by .dockerignore"
                assert (REPO / source).exists(), f"COPY {source}: no such path"


# --- the requirements helper -------------------------------------------------------------------


def load_script(name: str) -> ModuleType:
    """One of the images' helper scripts, imported from its file (docker/ is no package)."""
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), DOCKER_DIR / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def requirements_script() -> ModuleType:
    return load_script("requirements.py")


@pytest.fixture
def run_requirements(
    requirements_script: ModuleType, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """Run the helper's command line as the Dockerfile does: (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        argv = ["--pyproject", str(REPO / "pyproject.toml"), *args]
        try:
            status = requirements_script.main(argv)
        except SystemExit as exc:  # argparse's error exit
            status = exc.code
        out, err = capsys.readouterr()
        return int(status or 0), out, err

    return run


def dockerfile_requirement_lists(stages: dict[str, list[tuple[str, str]]]) -> dict[str, list[str]]:
    """File name -> the helper's arguments, for every list the requirements stage writes."""
    commands = " ".join(a for i, a in stages["requirements"] if i == "RUN")
    found = re.findall(r"python requirements\.py ([^>&]+?)\s*>\s*/reqs/(\S+)", commands)
    return {filename: args.split() for args, filename in found}


def test_every_list_the_dockerfile_writes_can_be_made(
    stages: dict[str, list[tuple[str, str]]], run_requirements: Callable[..., tuple[int, str, str]]
) -> None:
    lists = dockerfile_requirement_lists(stages)
    assert len(lists) >= 4
    for filename, args in lists.items():
        status, out, err = run_requirements(*args)
        assert status == 0, f"{filename}: {err}"
        assert out.strip(), filename


def test_every_list_an_image_installs_is_written(
    stages: dict[str, list[tuple[str, str]]],
    services: dict[str, dict[str, Any]],
    gpu_override: dict[str, Any],
) -> None:
    written = dockerfile_requirement_lists(stages).keys()
    variants = {stage_args(stages["airflow"])["TENSORFLOW_VARIANT"]} | {
        build["args"]["TENSORFLOW_VARIANT"]
        for _, build in build_specs(services, gpu_override)
        if "TENSORFLOW_VARIANT" in build.get("args", {})
    }
    assert variants == {"cpu", "cuda"}
    for name, stage in stages.items():
        for instruction, arguments in stage:
            for used in (
                re.findall(r"-r \"?/reqs/(\S+?\.txt)", arguments) if instruction == "RUN" else ()
            ):
                expanded = {used.replace("${TENSORFLOW_VARIANT}", v) for v in variants}
                assert expanded <= written, f"stage {name} installs {used}, never written"


def test_cuda_swaps_tensorflow_keeping_the_pinned_version(
    run_requirements: Callable[..., tuple[int, str, str]],
) -> None:
    cpu = next(r for r in pyproject_extra("train") if r.startswith("tensorflow-cpu"))
    lines = run_requirements("train", "--cuda")[1].splitlines()
    assert not any(line.startswith("tensorflow-cpu") for line in lines)
    assert "tensorflow[and-cuda]" + cpu.removeprefix("tensorflow-cpu") in lines


def test_an_extra_can_be_narrowed_to_named_packages(
    run_requirements: Callable[..., tuple[int, str, str]],
) -> None:
    lines = run_requirements("--no-base", "train:keras,tensorflow-cpu")[1].splitlines()
    assert lines == [
        r for r in pyproject_extra("train") if r.startswith(("keras", "tensorflow-cpu"))
    ]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["nope"], "no extra 'nope'"),
        (["train:no-such-package"], "does not list no-such-package"),
        (["serve", "--cuda"], "no tensorflow-cpu to replace"),
    ],
)
def test_requirements_refuses_what_pyproject_does_not_declare(
    run_requirements: Callable[..., tuple[int, str, str]], args: list[str], error: str
) -> None:
    status, out, err = run_requirements(*args)
    assert status != 0
    assert error in err
    assert out == ""


# --- the health probe ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_probe() -> ModuleType:
    return load_script("http_probe.py")


@pytest.fixture(scope="module")
def health_server() -> Iterator[RouteServer]:
    server = RouteServer({"/ok": Reply(200, b"ok"), "/sick": Reply(503, b"not ready")})
    server.start()
    yield server
    server.stop()


def test_probe_passes_on_2xx(http_probe: ModuleType, health_server: RouteServer) -> None:
    before = health_server.hits["/ok"]
    assert http_probe.main([health_server.url("/ok")]) == 0
    assert health_server.hits["/ok"] == before + 1


def test_probe_fails_on_an_error_status(
    http_probe: ModuleType, health_server: RouteServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert http_probe.main([health_server.url("/sick")]) == 1
    assert "503" in capsys.readouterr().err


def test_probe_fails_when_nothing_listens(
    http_probe: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago, now closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert http_probe.main([f"http://127.0.0.1:{port}/healthz", "--timeout", "5"]) == 1
    assert "127.0.0.1" in capsys.readouterr().err


# --- the Airflow start-up scripts ---------------------------------------------------------------


@pytest.fixture
def fake_airflow(tmp_path: Path) -> Path:
    """A stand-in for the Airflow CLI (which needs the stack's database): it records how it
    was called, its environment included, into calls.jsonl next to it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "airflow"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "with open(os.path.join(os.path.dirname(__file__), 'calls.jsonl'), 'a') as f:\n"
        "    f.write(json.dumps({'argv': sys.argv[1:], 'env': dict(os.environ)}) + '\\n')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def airflow_calls(bin_dir: Path) -> list[dict[str, Any]]:
    calls = bin_dir / "calls.jsonl"
    if not calls.exists():
        return []
    return [json.loads(line) for line in calls.read_text().splitlines()]


def run_script(
    name: str, env: dict[str, str], bin_dir: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    path = f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin"
    return subprocess.run(
        ["bash", str(DOCKER_DIR / name), *args],
        env={"PATH": path, **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def init_env(
    tmp_path: Path, services: dict[str, dict[str, Any]], example_env: dict[str, str]
) -> dict[str, str]:
    """airflow-init's environment from the compose file, with real-looking secrets."""
    secrets = {name: "s3cret" for name, value in example_env.items() if value == PLACEHOLDER}
    secrets["AIRFLOW_FERNET_KEY"] = "A" * 43 + "="  # 32 bytes, URL-safe base64
    env = service_env(services["airflow-init"], {**example_env, **secrets})
    env["BAGHUNTER_HOME"] = str(tmp_path / "data")
    return env


def test_init_migrates_when_the_settings_are_sound(
    fake_airflow: Path, init_env: dict[str, str]
) -> None:
    result = run_script("airflow-init.sh", init_env, fake_airflow)
    assert result.returncode == 0, result.stderr
    assert [call["argv"] for call in airflow_calls(fake_airflow)] == [["db", "migrate"]]
    assert Path(init_env["BAGHUNTER_HOME"]).is_dir()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            {"AIRFLOW__API_AUTH__JWT_SECRET": "", "AIRFLOW__API__SECRET_KEY": ""},
            "AIRFLOW__API_AUTH__JWT_SECRET AIRFLOW__API__SECRET_KEY",
        ),
        ({"AIRFLOW__API__SECRET_KEY": PLACEHOLDER}, "placeholder: AIRFLOW__API__SECRET_KEY"),
        ({"AIRFLOW__CORE__FERNET_KEY": "not-a-key"}, "not a Fernet key"),
        ({"AIRFLOW_CONN_MONGO_DEFAULT": "mongodb://u:p@mongo:27017/baghunter"}, "mongo://"),
    ],
    ids=["missing", "placeholder", "bad-fernet-key", "mongodb-scheme"],
)
def test_init_refuses_unsound_settings_before_touching_the_database(
    fake_airflow: Path, init_env: dict[str, str], change: dict[str, str], error: str
) -> None:
    result = run_script("airflow-init.sh", {**init_env, **change}, fake_airflow)
    assert result.returncode == 1
    assert error in result.stderr
    assert airflow_calls(fake_airflow) == []


def test_apiserver_sets_the_admin_password_and_keeps_it_from_the_server(
    fake_airflow: Path, tmp_path: Path
) -> None:
    passwords = tmp_path / "passwords.json"
    env = {
        "AIRFLOW_ADMIN_USER": "boss",
        "AIRFLOW_ADMIN_PASSWORD": "s3cret-pw",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
    }
    result = run_script("airflow-apiserver.sh", env, fake_airflow, "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert json.loads(passwords.read_text()) == {"boss": "s3cret-pw"}
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    [call] = airflow_calls(fake_airflow)
    assert call["argv"] == ["api-server", "--workers", "2"]
    assert "AIRFLOW_ADMIN_PASSWORD" not in call["env"]


def test_apiserver_refuses_the_placeholder_password(fake_airflow: Path, tmp_path: Path) -> None:
    env = {
        "AIRFLOW_ADMIN_USER": "admin",
        "AIRFLOW_ADMIN_PASSWORD": PLACEHOLDER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "passwords.json"),
    }
    result = run_script("airflow-apiserver.sh", env, fake_airflow)
    assert result.returncode == 1
    assert airflow_calls(fake_airflow) == []


# --- a real Compose CLI, when there is one --------------------------------------------------------


def compose_command() -> list[str] | None:
    """Compose v1 or the v2 plugin, whichever answers; None without either."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.fixture(scope="module")
def compose_cli() -> list[str]:
    command = compose_command()
    if command is None:
        pytest.skip("no docker-compose or docker compose on PATH")
    return command


def run_compose_config(
    cli: list[str], env_file: Path, *files: Path
) -> subprocess.CompletedProcess[str]:
    # A bare environment: variables of the test process must not stand in for the env file.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    file_args = [arg for f in files for arg in ("-f", str(f))]
    return subprocess.run(
        [*cli, "--env-file", str(env_file), *file_args, "config", "--quiet"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_compose_cli_accepts_the_files(compose_cli: list[str]) -> None:
    # The override merged onto the base: an error in either file fails the merge.
    result = run_compose_config(compose_cli, ENV_EXAMPLE, COMPOSE, GPU_OVERRIDE)
    assert result.returncode == 0, result.stderr


def test_compose_cli_refuses_to_start_without_a_secret(
    compose_cli: list[str], tmp_path: Path
) -> None:
    env_file = tmp_path / "env"
    kept = [
        line
        for line in ENV_EXAMPLE.read_text().splitlines()
        if not line.startswith("MONGO_PASSWORD=")
    ]
    env_file.write_text("\n".join(kept) + "\n")
    result = run_compose_config(compose_cli, env_file, COMPOSE)
    assert result.returncode != 0
    assert "set MONGO_PASSWORD in .env" in result.stderr
