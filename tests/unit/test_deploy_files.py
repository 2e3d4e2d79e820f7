"""The deployment files agree with each other and with `mina.settings.Settings`.

Procfile, docker-compose.yml and the Dockerfile are read as data: every Procfile process runs in
compose, every variable compose hands the app is a real setting, and the infrastructure keeps
the properties the design relies on (Redis AOF + noeviction, healthchecks, startup order).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from mina.settings import Settings
from mina.storage import S3Storage, build_storage

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
APP_ENV_EXTRA = {"PORT"}  # read by the Procfile/gunicorn (and Settings.port through its alias)
APP_ENV_PREFIXES = ("AWS_",)  # boto3's own credential chain
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


# --- helpers -------------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def load_procfile() -> dict[str, str]:
    processes: dict[str, str] = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


def settings_env_names() -> set[str]:
    """Every environment variable `Settings` reads: MINA_<FIELD>, or a field's own alias."""
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias if isinstance(alias, str) else f"MINA_{name.upper()}")
    return names


def readme_config_vars(readme: Path = ROOT / "README.md") -> set[str]:
    """The MINA_* names in the first column of README.md's Markdown tables (empty if none)."""
    if not readme.exists():
        return set()
    found = set()
    for line in readme.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and cells:
            found.update(re.findall(r"\bMINA_[A-Z0-9_]+\b", cells[0]))
    return found


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` against `env`."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if name in env and (env[name] or not (op or "").startswith(":")):
            return env[name]
        if op and op.endswith("?"):
            raise KeyError(f"{name} must be set: {arg}")
        return arg or ""

    return _INTERPOLATION.sub(one, value)


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run the Mina image."""
    return {name: s for name, s in compose["services"].items() if s.get("build") == "."}


def normalize(tokens: list[str]) -> list[str]:
    """Put `${PORT:-5000}` and friends at their defaults, as a shell would without PORT set."""
    return [interpolate(token, {}) for token in tokens]


# --- Procfile <-> compose ------------------------------------------------------------------


def test_procfile_has_the_four_processes() -> None:
    processes = load_procfile()
    assert set(processes) == {"web", "worker", "scheduler", "release"}
    assert shlex.split(processes["web"])[0] == "gunicorn"
    assert "api:create_app()" in shlex.split(processes["web"])
    assert shlex.split(processes["release"]) == ["mina", "db", "upgrade"]


@pytest.mark.parametrize("process", ["web", "worker", "scheduler", "release"])
def test_every_procfile_process_runs_in_compose(process: str) -> None:
    wanted = normalize(shlex.split(load_procfile()[process]))
    commands = [command_of(s) for s in app_services(load_compose()).values()]

    if process == "web":
        matches = [c for c in commands if c == wanted or c[:2] == ["mina", "web"]]
    else:  # compose may add options, e.g. `mina worker --queues cpu`
        matches = [c for c in commands if c[: len(wanted)] == wanted]
    assert matches, f"no compose service runs {wanted}"


def test_workers_cover_both_queues() -> None:
    services = load_compose()["services"]
    assert command_of(services["worker-cpu"]) == ["mina", "worker", "--queues", "cpu"]
    assert command_of(services["worker-network"])[:4] == ["mina", "worker", "--queues", "network"]


# --- infrastructure ------------------------------------------------------------------------


def test_redis_keeps_every_message() -> None:
    command = " ".join(command_of(load_compose()["services"]["redis"]))
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command


@pytest.mark.parametrize(
    ("service", "probe"), [("postgres", "pg_isready"), ("redis", "ping"), ("web", "/healthz")]
)
def test_healthchecks(service: str, probe: str) -> None:
    check = load_compose()["services"][service].get("healthcheck")
    assert check, f"{service} has no healthcheck"
    test = check["test"]
    assert test[0] in ("CMD", "CMD-SHELL")
    assert probe in " ".join(test)


def test_depends_on_is_valid_and_ordered() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: use the long form with conditions"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = spec.get("condition", "service_started")
            assert condition in COMPOSE_CONDITIONS, f"{name} -> {target}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"

    web = services["web"]["depends_on"]
    assert web["migrate"]["condition"] == "service_completed_successfully"
    assert web["redis"]["condition"] == "service_healthy"
    assert web["minio-init"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_minio_init_creates_the_bucket_the_app_uses() -> None:
    compose = load_compose()
    storage_url = compose["services"]["web"]["environment"]["MINA_STORAGE_URL"]
    bucket = storage_url.removeprefix("s3://").split("/")[0]
    assert f"mc mb --ignore-existing local/{bucket}" in " ".join(
        command_of(compose["services"]["minio-init"])
    )


# --- environment <-> Settings --------------------------------------------------------------


def test_app_services_only_set_real_settings() -> None:
    known = settings_env_names()
    services = app_services(load_compose())
    assert set(services) >= {"migrate", "web", "worker-cpu", "worker-network", "scheduler"}
    for name, service in services.items():
        for key in service["environment"]:
            assert key in known or key in APP_ENV_EXTRA or key.startswith(APP_ENV_PREFIXES), (
                f"{name}: {key} is not a field of mina.settings.Settings"
            )


def test_app_services_share_the_production_configuration() -> None:
    for name, service in app_services(load_compose()).items():
        env = service["environment"]
        assert env["MINA_DATABASE_URL"].startswith("postgresql://"), name
        assert env["MINA_BROKER_URL"].startswith("redis://"), name
        assert env["MINA_STORAGE_URL"].startswith("s3://"), name
        assert env["MINA_OPERATOR_TOKEN"] == "${MINA_OPERATOR_TOKEN:?set it}", name
        with pytest.raises(KeyError, match="MINA_OPERATOR_TOKEN"):
            interpolate(env["MINA_OPERATOR_TOKEN"], {})


def test_compose_environment_parses_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = load_compose()["services"]["web"]["environment"]
    for key, value in env.items():
        monkeypatch.setenv(key, interpolate(str(value), {"MINA_OPERATOR_TOKEN": "t0ken"}))

    settings = Settings()
    storage = build_storage(settings)

    assert settings.port == 5000
    assert settings.operator_token == "t0ken"
    assert settings.resolved_redis_url == "redis://redis:6379/0"
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix, storage.endpoint_url) == (
        "mina",
        "blobs",
        "http://minio:9000",
    )


# --- Dockerfile ----------------------------------------------------------------------------


def test_dockerfile_builds_a_non_root_image_with_ffmpeg() -> None:
    text = (ROOT / "Dockerfile").read_text()
    instructions = re.sub(r"\\\n\s*", " ", text)  # join continuation lines
    assert re.search(r"^FROM python:3\.11-slim\b", instructions, re.M)
    assert re.search(r"^RUN .*apt-get install [^\n]*\bffmpeg\b", instructions, re.M)
    assert re.search(r"^RUN .*pip install \.", instructions, re.M)
    users = re.findall(r"^USER (\S+)", instructions, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r'^CMD \["mina", "web"\]', instructions, re.M)


# --- helpers themselves --------------------------------------------------------------------


def test_helpers_read_what_they_claim(tmp_path: Path) -> None:
    assert interpolate("${A:-x}/${B}", {"B": "b"}) == "x/b"
    assert interpolate("${A:-x}", {"A": "a"}) == "a"
    assert "MINA_DATA_DIR" in settings_env_names()
    assert "PORT" in settings_env_names()

    readme = tmp_path / "README.md"
    readme.write_text(
        "text MINA_IGNORED\n\n| name | meaning |\n|---|---|\n"
        "| `MINA_DATA_DIR` | where MINA_NOT_THIS goes |\n| `PORT` | port |\n"
    )
    assert readme_config_vars(readme) == {"MINA_DATA_DIR"}
    assert readme_config_vars(tmp_path / "missing.md") == set()
