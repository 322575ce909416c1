"""Every credential form in a database URL is masked wherever the URL is shown: the password in
the userinfo and credential query parameters (``?password=``, ``?sslpassword=``, ``?token=``, ...
in any case)."""

from __future__ import annotations

import logging
import traceback

import pytest
from prefect_claude_sessions.flows.cli import app
from prefect_claude_sessions.storage import DatabaseUnavailable, SQLModelSessionStore, get_engine
from prefect_claude_sessions.storage.config import masked_url, scrub_url_secrets
from typer.testing import CliRunner

MARKER = "MARKERs3cr3t"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:SECRET@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db?password=SECRET", "postgresql://u@h/db?password=***"),
        (
            "postgresql://u@h/db?PassWord=SECRET&sslmode=require",
            "postgresql://u@h/db?PassWord=***&sslmode=require",
        ),
        ("postgresql://u@h/db?passwd=SECRET&pwd=SECRET", "postgresql://u@h/db?passwd=***&pwd=***"),
        (
            "postgresql://u@h/db?sslpassword=SECRET&sslmode=verify-full",
            "postgresql://u@h/db?sslpassword=***&sslmode=verify-full",
        ),
        (
            "postgresql+psycopg://h/db?token=SECRET&secret=SECRET&api_key=SECRET&API_KEY=SECRET",
            "postgresql+psycopg://h/db?token=***&secret=***&api_key=***&API_KEY=***",
        ),
        (
            "postgresql://h/db?client_secret=SECRET&Auth_Token=SECRET&application_name=triage",
            "postgresql://h/db?client_secret=***&Auth_Token=***&application_name=triage",
        ),
        (
            "postgresql://h/db?password=SECRET&password=SECRET",
            "postgresql://h/db?password=***&password=***",
        ),
        ("sqlite:////tmp/x.db?timeout=5", "sqlite:////tmp/x.db?timeout=5"),
    ],
)
def test_masked_url_hides_every_credential_and_keeps_the_rest(url: str, shown: str) -> None:
    masked = masked_url(url)
    assert masked == shown and "SECRET" not in masked


def test_unparsable_url_shows_nothing_of_it() -> None:
    assert masked_url(f"::not a url {MARKER}") == "<unparsable database URL>"


def test_scrub_masks_secrets_echoed_in_free_text() -> None:
    url = f"postgresql://u:{MARKER}@h/db?sslpassword={MARKER}2"
    text = f'could not connect with "password={MARKER} sslpassword={MARKER}2"'
    assert MARKER not in scrub_url_secrets(text, url)
    assert scrub_url_secrets("x password=ab", "postgresql://h/db?password=ab") == "x password=ab"


def test_an_unreachable_postgres_url_with_a_query_password_never_shows_it(caplog) -> None:
    url = f"postgresql://someone@127.0.0.1:1/nowhere?password={MARKER}&connect_timeout=3"
    with caplog.at_level(logging.DEBUG), pytest.raises(DatabaseUnavailable) as refused:
        get_engine(url)
    err = refused.value
    assert "127.0.0.1:1/nowhere?password=***" in str(err)
    seen = "".join(traceback.format_exception(err)) + repr(err) + str(err.url) + caplog.text
    assert MARKER not in seen

    store = SQLModelSessionStore(url)
    assert MARKER not in repr(store)
    with pytest.raises(DatabaseUnavailable) as again:
        store.entries("6f1c9b8e-0000-4000-8000-000000000001")
    assert MARKER not in "".join(traceback.format_exception(again.value))

    result = CliRunner().invoke(app, ["ls", "--database", url])
    assert result.exit_code != 0
    assert "password=***" in result.output and MARKER not in result.output
