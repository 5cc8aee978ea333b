"""What the `holdfast` command connects to without settings (cli/stack.py): the `make
run` stack of its folder, its database found by the running server's postmaster.pid and
its secrets by the files `make run` keeps under `.data/`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.stack import stack_settings
from settings import get_settings


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder with a `make run` stack's .data, and no settings of its own."""
    data = tmp_path / ".data"
    (data / "postgres").mkdir(parents=True)
    (data / "postgres" / "postmaster.pid").write_text(
        "4242\n/x/.data/postgres\n1700000000\n5433\n/x/.data/postgres\n\n"
    )
    (data / "audit-key").write_text("audit-from-make-run\n")
    (data / "app-database-password").write_text("app-from-make-run\n")
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "AUDIT_KEY", "APP_DATABASE_PASSWORD", "DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_the_running_make_run_database_is_found(project: Path) -> None:
    url = stack_settings().database_url
    assert url == "postgresql+psycopg://postgres@/holdfast?host=/x/.data/postgres&port=5433"


def test_make_runs_secrets_fill_what_is_not_set(project: Path) -> None:
    settings = stack_settings()
    assert settings.audit_key.get_secret_value() == "audit-from-make-run"
    assert settings.app_database_password.get_secret_value() == "app-from-make-run"


def test_settings_given_win_over_make_runs(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_KEY", "given")
    monkeypatch.setenv("DATABASE_URL", "postgresql://owner@db/holdfast")
    get_settings.cache_clear()
    settings = stack_settings()
    assert settings.audit_key.get_secret_value() == "given"
    assert settings.database_url == "postgresql://owner@db/holdfast"


def test_without_a_running_server_no_database_is_assumed(project: Path) -> None:
    (project / ".data" / "postgres" / "postmaster.pid").unlink()
    assert stack_settings().database_url is None
