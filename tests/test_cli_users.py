"""``genstatus user add|list|password|remove``: through the real command line entry point, on a real database."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.cli import main
from monitor.store.db import make_engine
from monitor.store.models import ApiToken, User
from web.admin.passwords import verify_password

PASSWORD = "a long enough password"


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "genstatus.yaml"
    path.write_text(f"database: sqlite:///{tmp_path / 'gs.db'}\ncanaries: [{{id: c, prompt: x}}]\n"
                    "services: [{id: svc, provider: openai, canaries: [c]}]\n")
    assert main(["db", "upgrade", "-c", str(path)]) == 0
    return path


def run(monkeypatch, config, *args: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["user", *args, "-c", str(config)])


def users(config) -> dict[str, str]:
    engine = make_engine(f"sqlite:///{config.parent / 'gs.db'}")
    try:
        with Session(engine) as session:
            return {u.name: u.password_hash for u in session.scalars(select(User))}
    finally:
        engine.dispose()


def test_add_with_password_stdin_then_duplicate_is_exit_2(monkeypatch, config, capsys):
    assert run(monkeypatch, config, "add", "ada", "--password-stdin", stdin=PASSWORD + "\n") == 0
    assert "added user ada" in capsys.readouterr().out
    stored = users(config)["ada"]
    assert stored.startswith("scrypt$n=16384,r=8,p=5$") and verify_password(PASSWORD, stored)
    assert PASSWORD not in stored
    assert run(monkeypatch, config, "add", "ada", "--password-stdin", stdin="another password!\n") == 2
    assert "already exists" in capsys.readouterr().err
    assert users(config)["ada"] == stored


@pytest.mark.parametrize("name, password, message", [
    ("bob", "", "the password is empty"),
    ("bob", "short", "shorter than 10 characters"),
    ("bob", "   \t      ", "the password is empty"),
    (".bob", PASSWORD, "invalid user name"),
    ("b" * 65, PASSWORD, "invalid user name"),
])
def test_bad_name_or_password_is_exit_2(monkeypatch, config, capsys, name, password, message):
    assert run(monkeypatch, config, "add", name, "--password-stdin", stdin=password + "\n") == 2
    assert message in capsys.readouterr().err
    assert users(config) == {}


def test_password_asked_twice_must_match(monkeypatch, config, capsys):
    answers = iter([PASSWORD, PASSWORD + "x"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert run(monkeypatch, config, "add", "ada") == 2
    assert "the two passwords differ" in capsys.readouterr().err
    answers = iter([PASSWORD, PASSWORD])
    assert run(monkeypatch, config, "add", "ada") == 0


def test_list_change_password_and_remove(monkeypatch, config, capsys):
    run(monkeypatch, config, "add", "ada", "--password-stdin", stdin=PASSWORD)
    capsys.readouterr()
    assert run(monkeypatch, config, "list") == 0
    assert capsys.readouterr().out.startswith("ada\tadded ")
    before = users(config)["ada"]
    assert run(monkeypatch, config, "password", "ada", "--password-stdin", stdin="a different password\n") == 0
    assert users(config)["ada"] != before and verify_password("a different password", users(config)["ada"])
    engine = make_engine(f"sqlite:///{config.parent / 'gs.db'}")
    with Session(engine) as session, session.begin():
        user = session.scalar(select(User))
        session.add(ApiToken(user_id=user.id, name="ci", token_hash="0" * 64))
    assert run(monkeypatch, config, "remove", "ada") == 0
    assert "1 API tokens" in capsys.readouterr().out
    with Session(engine) as session:
        assert session.scalars(select(ApiToken)).all() == []
    engine.dispose()
    assert users(config) == {}
    assert run(monkeypatch, config, "remove", "ada") == 2
    assert run(monkeypatch, config, "password", "ada", "--password-stdin", stdin=PASSWORD) == 2


def test_user_help(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["user", "add", "--help"])
    assert exited.value.code == 0 and "--password-stdin" in capsys.readouterr().out
