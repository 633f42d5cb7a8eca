"""Settings: defaults for one host, no insecure production start, the filesystem broker's folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from store.config import Settings, get_settings, reset_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OPTFB_"):
            monkeypatch.delenv(name)


def test_local_defaults_use_sqlite_and_the_filesystem_broker(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.mode == "local"
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'optfb.db'}"
    assert settings.resolved_broker_url == "filesystem://"
    options = settings.broker_transport_options()
    assert options["data_folder_in"] == options["data_folder_out"]
    for key in ("data_folder_in", "processed_folder", "control_folder"):
        assert Path(options[key]).is_dir() and Path(options[key]).is_relative_to(tmp_path)


def test_other_brokers_need_no_transport_options() -> None:
    assert Settings(broker_url="redis://localhost:6379/0").broker_transport_options() == {}


def test_production_refuses_to_start_without_tokens() -> None:
    with pytest.raises(ValidationError, match="OPTFB_API_TOKENS is required"):
        Settings(mode="production")
    with pytest.raises(ValidationError, match="token:owner"):
        Settings(mode="production", api_tokens="just-a-token")
    settings = Settings(mode="production", api_tokens="s3cret:alice, t0ken:bob")
    assert settings.token_owners() == {"s3cret": "alice", "t0ken": "bob"}
    assert "s3cret" not in repr(settings)


def test_get_settings_reads_the_environment_once_until_reset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPTFB_MAX_ATTEMPTS", "7")
    reset_settings()
    try:
        assert get_settings().max_attempts == 7
        monkeypatch.setenv("OPTFB_MAX_ATTEMPTS", "2")
        assert get_settings().max_attempts == 7
        reset_settings()
        assert get_settings().max_attempts == 2
    finally:
        monkeypatch.undo()
        reset_settings()
