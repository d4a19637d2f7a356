"""The deployment examples of deploy/ name only settings pyblob has, and the compose file is
well-formed and mounts files that exist (CI runs no Docker engine or systemd to start them)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pyblob.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def settings_named(text: str) -> set[str]:
    return set(re.findall(rf"\b{ENV_PREFIX}[A-Z0-9_]+", text))


def test_every_setting_the_examples_name_exists() -> None:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    for path in [*DEPLOY.iterdir(), ROOT / "Dockerfile"]:
        named = settings_named(path.read_text())
        assert named <= known, f"{path.name} names settings pyblob does not have: {sorted(named - known)}"


def test_the_compose_example_runs_pyblob_behind_caddy() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.example.yml").read_text())
    pyblob, caddy = compose["services"]["pyblob"], compose["services"]["caddy"]
    assert "pyblob-data:/data" in pyblob["volumes"] and "8000" in pyblob["expose"]
    assert pyblob["environment"]["PYBLOB_PUBLIC_URL"].startswith("https://")
    mounted = [v.split(":")[0] for v in caddy["volumes"] if v.startswith("./")]
    assert mounted and all((DEPLOY / m).is_file() for m in mounted)
    assert "reverse_proxy pyblob:8000" in (DEPLOY / "Caddyfile.compose").read_text()
    assert {"80:80", "443:443"} <= set(caddy["ports"])


def test_the_systemd_unit_runs_serve_as_its_own_user() -> None:
    unit = (DEPLOY / "pyblob.service").read_text()
    assert "User=pyblob" in unit and "ExecStart=/opt/pyblob/bin/pyblob serve" in unit
    assert "StateDirectoryMode=0700" in unit and "NoNewPrivileges=yes" in unit
