"""The image and the Compose file, read the way Docker reads them (no daemon needed):
one image built once for every idsync service, the PostgreSQL password required, the
examples in the image, and a build context that leaves local state (.venv, .git, .idsync
with token hashes, .env) behind. scripts/test.sh also runs `docker compose config -q`
where a Compose implementation is installed."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from tests.support.dockerfile import copies, stages

ROOT = Path(__file__).resolve().parents[2]
IDSYNC_SERVICES = {"migrate", "api", "worker", "beat"}


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


# ------------------------------------------------------------------ .dockerignore
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (moby/patternmatcher): `**` any number of directories,
    `*` and `?` within one path segment."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(f"^{out}$")


@cache
def dockerignore() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = str(PurePosixPath(line.removeprefix("!").strip().lstrip("/")))
        rules.append((negated, _pattern_regex(pattern)))
    return tuple(rules)


def in_context(path: str) -> bool:
    """Whether `path` (relative to the project root) is sent to the builder: the last
    rule matching the path or one of its parent directories decides, as in Docker."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in dockerignore():
        if negated != excluded:
            continue
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return not excluded


# ------------------------------------------------------------------ tests
def test_the_postgres_password_is_required_not_defaulted() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    uses = re.findall(r"\$\{POSTGRES_PASSWORD([^}]*)\}", text)
    assert uses, "docker-compose.yml does not use POSTGRES_PASSWORD"
    assert all(use.startswith(":?") for use in uses), uses
    assert services()["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?"
    )
    for name in IDSYNC_SERVICES:
        env = services()[name]["environment"]
        assert env["PGPASSWORD"].startswith("${POSTGRES_PASSWORD:?"), name
        # No password written into the URL (libpq takes PGPASSWORD).
        assert re.match(r"postgresql://[^:@/]+@postgres:5432/", env["DATABASE_URL"]), name


def test_one_image_built_once_for_every_idsync_service() -> None:
    builders = [name for name, service in services().items() if "build" in service]
    assert builders == ["migrate"], builders
    image = services()["migrate"]["image"]
    for name in IDSYNC_SERVICES:
        assert services()[name]["image"] == image, name
        assert services()[name]["command"][0] == "idsync", name
    # docker-compose 1.29 readies images in dependency order and Compose v2 does not pull
    # an image another service builds: every other idsync service waits for the builder.
    for name in IDSYNC_SERVICES - {"migrate"}:
        depends = services()[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    assert services()["migrate"]["build"] == "."


def test_worker_and_beat_share_the_apis_configuration() -> None:
    api_env = services()["api"]["environment"]
    for name in ("worker", "beat", "migrate"):
        env = services()[name]["environment"]
        for key in ("DATABASE_URL", "PGPASSWORD", "REDIS_URL"):
            assert env[key] == api_env[key], (name, key)
    assert services()["worker"]["command"] == ["idsync", "worker"]
    assert services()["beat"]["command"] == ["idsync", "beat"]


def test_the_runtime_image_has_the_examples_in_its_working_directory() -> None:
    runtime = stages()[-1]
    workdirs = [args for instruction, args in runtime if instruction == "WORKDIR"]
    copied = copies(runtime)
    assert (["examples"], "./examples") in copied
    # `idsync apply examples/acme.yaml` works from the image's working directory.
    examples_copy = runtime.index(("COPY", "examples ./examples"))
    workdir_before = [
        args for instruction, args in runtime[:examples_copy] if instruction == "WORKDIR"
    ]
    assert workdir_before and workdir_before[-1] == workdirs[-1]
    assert (ROOT / "examples" / "acme.yaml").is_file()
    # The service is not run as root.
    assert [args for instruction, args in runtime if instruction == "USER"] == ["idsync"]


def test_the_build_context_has_what_the_dockerfile_copies() -> None:
    sources = [source for stage in stages() for paths, _ in copies(stage) for source in paths]
    assert {"pyproject.toml", "idsync", "examples"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert in_context(source), f"{source} is copied but .dockerignore leaves it out"
    for path in (
        "idsync/app.py",
        "models/db/migrations/env.py",
        "scim/routes.py",
        "worker/factory.py",
        "examples/acme.yaml",
        "README.md",
    ):
        assert in_context(path), path


def test_the_build_context_leaves_local_state_behind() -> None:
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        ".idsync/idsync.db",  # SCIM token and admin key hashes
        ".idsync/redis/dump.rdb",
        ".env",  # POSTGRES_PASSWORD
        ".mypy_cache/3.11/cache.db",
        ".ruff_cache/CACHEDIR.TAG",
        ".pytest_cache/v/cache/nodeids",
        ".hypothesis/examples/x",
        "idsync/__pycache__/app.cpython-311.pyc",
        "models/db/__pycache__/session.cpython-311.pyc",
        "idsync.egg-info/PKG-INFO",
        "bench/results/run.json",
        "idsync.db",
        "examples/acme.db",
        "tests/conftest.py",
    ):
        assert not in_context(path), f"{path} would be sent to the builder"


def test_the_dockerignore_reader_follows_dockers_rules() -> None:
    # The reader above is only as good as its model of Docker's matcher.
    assert _pattern_regex("**/__pycache__").match("a/b/__pycache__")
    assert _pattern_regex("**/__pycache__").match("__pycache__")
    assert not _pattern_regex("*").match("a/b")
    assert _pattern_regex("*.db").match("x.db") and not _pattern_regex("*.db").match("a/x.db")
