"""The command line: seed-demo prints one key per role, create-api-key prints the key alone."""

from __future__ import annotations

import pytest

from billing_graphql.cli import main


@pytest.fixture
def sqlite_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BILLING_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    return tmp_path / "cli.db"


def test_seed_demo_then_create_api_key(sqlite_file, capsys):
    assert main(["seed-demo"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("=")[0] for line in lines] == ["SUPER_ADMIN", "OWNER", "ADMIN", "MEMBER", "PARTNER"]
    assert all(line.split("=", 1)[1].startswith("bgk_") for line in lines)
    assert main(["create-api-key", "--role", "ADMIN", "--org", "demo", "--label", "ops"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("bgk_") and "\n" not in key
    # Seeding again keeps one catalog and prints fresh keys.
    assert main(["seed-demo"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 5


def test_create_api_key_for_unknown_organization_fails(sqlite_file):
    with pytest.raises(SystemExit, match="no organization"):
        main(["create-api-key", "--role", "OWNER", "--org", "nope"])


def test_bad_setting_is_reported_with_its_name(monkeypatch, capsys):
    monkeypatch.setenv("BILLING_GRAPHIQL", "perhaps")
    assert main(["migrate"]) == 2
    assert "BILLING_GRAPHIQL" in capsys.readouterr().err
