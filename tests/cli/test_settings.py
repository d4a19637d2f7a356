"""Settings from the environment and `.env`, and the README's settings table generated from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pyblob.settings import Settings, store_config


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PYBLOB_* from the shell and no `.env` from the checkout."""
    monkeypatch.chdir(tmp_path)
    for name in list(Settings.model_fields):
        monkeypatch.delenv("PYBLOB_" + name.upper(), raising=False)


def test_defaults() -> None:
    s = Settings()
    assert (s.data_dir, s.host, s.port, s.workers) == (Path("data"), "127.0.0.1", 8000, 1)
    assert s.public_url == "http://127.0.0.1:8000"
    assert (
        s.max_object_size == 0 and s.default_quota == 0 and s.upload_max_file_size == 0
    )  # unlimited, as S3 stores are
    assert s.ratelimit_s3_key_rate == 0  # S3 clients are not rate limited per key unless asked
    assert s.durable is True


def test_environment_with_human_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYBLOB_DEFAULT_QUOTA", "10MiB")
    monkeypatch.setenv("PYBLOB_MAX_OBJECT_SIZE", "1G")
    monkeypatch.setenv("PYBLOB_DURABLE", "false")
    monkeypatch.setenv("PYBLOB_GC_GRACE_SECONDS", "60")
    config = store_config(Settings())
    assert (config.default_quota, config.default_max_object_size) == (10 * 1024**2, 1024**3)
    assert (config.durable, config.gc_grace_seconds) == (False, 60.0)


def test_dotenv_file_is_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PYBLOB_PORT=9001\nPYBLOB_HOST=0.0.0.0\nPYBLOB_REGION=eu-west-1\n")
    monkeypatch.setenv("PYBLOB_REGION", "garage")
    s = Settings()
    assert (s.port, s.region) == (9001, "garage")
    assert s.public_url == "http://localhost:9001"  # a wildcard host is no address to link to


def test_public_url_given_loses_trailing_slash() -> None:
    assert Settings(public_url="https://files.example.org/").public_url == "https://files.example.org"


def test_bad_size_and_half_key_pair_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYBLOB_DEFAULT_QUOTA", "lots")
    with pytest.raises(ValidationError, match="invalid size"):
        Settings()
    monkeypatch.delenv("PYBLOB_DEFAULT_QUOTA")
    with pytest.raises(ValidationError, match="or neither"):
        Settings(admin_access_key="ADMINKEY")


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYBLOB_ADMIN_ACCESS_KEY", "")
    monkeypatch.setenv("PYBLOB_ADMIN_SECRET_KEY", "")
    monkeypatch.setenv("PYBLOB_PORT", "")
    s = Settings()
    assert (s.admin_access_key, s.admin_secret_key, s.port) == (None, None, 8000)


def test_tls_files_make_the_public_url_https(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYBLOB_TLS_CERTFILE", "/etc/pyblob/cert.pem")
    monkeypatch.setenv("PYBLOB_TLS_KEYFILE", "/etc/pyblob/key.pem")
    s = Settings()
    assert (s.tls_certfile, s.tls_keyfile) == (Path("/etc/pyblob/cert.pem"), Path("/etc/pyblob/key.pem"))
    assert s.public_url == "https://127.0.0.1:8000"


def test_tls_key_without_certificate_is_rejected() -> None:
    with pytest.raises(ValidationError, match="PYBLOB_TLS_KEYFILE needs PYBLOB_TLS_CERTFILE"):
        Settings(tls_keyfile=Path("key.pem"))
