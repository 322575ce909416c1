"""The one settings object (`storage.settings`): parsing, defaults, errors that name the
variable, and a changed variable taking effect without a re-import."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import pytest
from prefect_claude_sessions.storage import InvalidSetting, SQLModelSessionStore, StorageError
from prefect_claude_sessions.storage.config import database_url, max_entry_bytes, sessions_home
from prefect_claude_sessions.storage.encryption import (
    configured_keys,
    encryption_configured,
    generate_key,
)
from prefect_claude_sessions.storage.settings import (
    ClaudeSessionsSettings,
    env_name,
    get_settings,
    reload_settings,
)

FIELDS = ClaudeSessionsSettings.model_fields


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path) -> None:
    """No CLAUDE_SESSIONS_* variable from the developer's shell; HOME in a scratch folder."""
    for field in FIELDS:
        monkeypatch.delenv(env_name(field), raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


def test_defaults_when_nothing_is_set(tmp_path) -> None:
    s = get_settings()
    assert s.database_url is None
    assert s.home == tmp_path / ".claude-sessions"  # ~ expanded at read time
    assert s.max_entry_bytes == 8 * 1024 * 1024
    assert s.encryption_key is None and s.encryption_key_block is None
    assert s.credentials_block is None
    assert (s.claim_ttl, s.busy_timeout) == (120.0, 60.0)
    assert (s.pool_size, s.pool_idle_s) == (4, 300.0)
    assert (s.turn_timeout_s, s.first_message_timeout_s) == (1800.0, 60.0)
    assert s.max_prompt_chars == 200_000
    assert s.redact == ()
    assert s.report_interval_s == 5.0
    assert s.dashboard_text is True


def test_every_field_reads_its_prefixed_variable(monkeypatch, tmp_path) -> None:
    key = generate_key()
    values = {
        "CLAUDE_SESSIONS_DATABASE_URL": " postgresql://u@db/x ",
        "CLAUDE_SESSIONS_HOME": "~/elsewhere",
        "CLAUDE_SESSIONS_MAX_ENTRY_BYTES": "1024",
        "CLAUDE_SESSIONS_ENCRYPTION_KEY": key,
        "CLAUDE_SESSIONS_ENCRYPTION_KEY_BLOCK": "enc-block",
        "CLAUDE_SESSIONS_CREDENTIALS_BLOCK": "claude",
        "CLAUDE_SESSIONS_CLAIM_TTL": "3.5",
        "CLAUDE_SESSIONS_BUSY_TIMEOUT": "0",
        "CLAUDE_SESSIONS_POOL_SIZE": "2",
        "CLAUDE_SESSIONS_POOL_IDLE_S": "0.25",
        "CLAUDE_SESSIONS_TURN_TIMEOUT_S": "0",
        "CLAUDE_SESSIONS_FIRST_MESSAGE_TIMEOUT_S": "4",
        "CLAUDE_SESSIONS_MAX_PROMPT_CHARS": "50",
        "CLAUDE_SESSIONS_REDACT": " contacts , ,other",
        "CLAUDE_SESSIONS_REPORT_INTERVAL_S": "0.5",
        "CLAUDE_SESSIONS_DASHBOARD_TEXT": "false",
    }
    assert set(values) == {env_name(f) for f in FIELDS}, "this test lists every field"
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    s = get_settings()
    assert s.database_url == "postgresql://u@db/x"
    assert s.home == tmp_path / "elsewhere"
    assert s.max_entry_bytes == 1024
    assert s.encryption_key is not None and s.encryption_key.get_secret_value() == key
    assert key not in repr(s)  # the key never shows in a repr or a log line
    assert s.encryption_key_block == "enc-block"
    assert s.credentials_block == "claude"
    assert (s.claim_ttl, s.busy_timeout) == (3.5, 0.0)
    assert (s.pool_size, s.pool_idle_s) == (2, 0.25)
    assert (s.turn_timeout_s, s.first_message_timeout_s) == (0.0, 4.0)
    assert s.max_prompt_chars == 50
    assert s.redact == ("contacts", "other")
    assert s.report_interval_s == 0.5
    assert s.dashboard_text is False
    # the same environment given as a mapping parses to the same settings
    assert ClaudeSessionsSettings.from_environ({**values, "HOME": str(tmp_path)}) == s


def test_empty_or_blank_means_the_default(monkeypatch) -> None:
    monkeypatch.setenv("CLAUDE_SESSIONS_POOL_SIZE", "")
    monkeypatch.setenv("CLAUDE_SESSIONS_TURN_TIMEOUT_S", "   ")
    monkeypatch.setenv("CLAUDE_SESSIONS_ENCRYPTION_KEY", " ")
    s = get_settings()
    assert s.pool_size == 4
    assert s.turn_timeout_s == 1800.0
    assert s.encryption_key is None
    assert not encryption_configured()


def test_only_the_exact_upper_case_names_count(monkeypatch) -> None:
    monkeypatch.setenv("claude_sessions_pool_size", "9")
    assert get_settings().pool_size == 4


def test_other_variables_with_our_prefix_are_ignored(monkeypatch) -> None:
    monkeypatch.setenv("CLAUDE_SESSIONS_TEST_POSTGRES", "postgresql://x")
    monkeypatch.setenv("CLAUDE_SESSIONS_NO_SUCH_SETTING", "1")
    assert get_settings().database_url is None


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CLAUDE_SESSIONS_TURN_TIMEOUT_S", "soon", "a number of seconds >= 0"),
        ("CLAUDE_SESSIONS_TURN_TIMEOUT_S", "-1", "a number of seconds >= 0"),
        ("CLAUDE_SESSIONS_FIRST_MESSAGE_TIMEOUT_S", "0", "a number of seconds > 0"),
        ("CLAUDE_SESSIONS_CLAIM_TTL", "0", "a number of seconds > 0"),
        ("CLAUDE_SESSIONS_BUSY_TIMEOUT", "-2", "a number of seconds >= 0"),
        ("CLAUDE_SESSIONS_POOL_SIZE", "0", "an integer >= 1"),
        ("CLAUDE_SESSIONS_POOL_SIZE", "2.5", "an integer >= 1"),
        ("CLAUDE_SESSIONS_POOL_IDLE_S", "never", "a number of seconds > 0"),
        ("CLAUDE_SESSIONS_MAX_PROMPT_CHARS", "lots", "an integer number of characters >= 1"),
        ("CLAUDE_SESSIONS_MAX_ENTRY_BYTES", "-5", "an integer number of bytes > 0"),
        ("CLAUDE_SESSIONS_REPORT_INTERVAL_S", "x", "a number of seconds >= 0"),
    ],
)
def test_a_bad_value_names_the_variable_and_what_was_expected(
    monkeypatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidSetting) as caught:
        get_settings()
    message = str(caught.value)
    assert message.startswith(f"{name} must be {expected}")
    assert f"got {value!r}" in message
    assert "validation error" not in message and "pydantic" not in message  # no raw dump
    assert caught.value.variables == [name]
    assert isinstance(caught.value, StorageError) and isinstance(caught.value, ValueError)


def test_every_bad_variable_is_named_at_once(monkeypatch) -> None:
    monkeypatch.setenv("CLAUDE_SESSIONS_POOL_SIZE", "many")
    monkeypatch.setenv("CLAUDE_SESSIONS_CLAIM_TTL", "long")
    with pytest.raises(InvalidSetting) as caught:
        get_settings()
    assert sorted(caught.value.variables) == [
        "CLAUDE_SESSIONS_CLAIM_TTL",
        "CLAUDE_SESSIONS_POOL_SIZE",
    ]
    copy = pickle.loads(pickle.dumps(caught.value))  # Prefect persists exceptions
    assert str(copy) == str(caught.value)


def test_a_secret_value_is_never_echoed() -> None:
    # An environment only holds strings, which every secret field accepts; a mapping built in
    # code can hold anything, and the error about it must still not show the value.
    with pytest.raises(InvalidSetting) as caught:
        ClaudeSessionsSettings.from_environ(
            {"CLAUDE_SESSIONS_ENCRYPTION_KEY": ["k1-secret-material"]}  # type: ignore[dict-item]
        )
    assert caught.value.variables == ["CLAUDE_SESSIONS_ENCRYPTION_KEY"]
    assert "k1-secret-material" not in str(caught.value)
    with pytest.raises(InvalidSetting) as caught:
        ClaudeSessionsSettings.from_environ(
            {
                "CLAUDE_SESSIONS_DATABASE_URL": "postgresql://u:hunter22@db/x",
                "CLAUDE_SESSIONS_POOL_SIZE": "zero",
            }
        )
    assert "hunter22" not in str(caught.value)


def test_keyword_arguments_are_validated_the_same_way() -> None:
    assert ClaudeSessionsSettings(pool_size=2).pool_size == 2
    with pytest.raises(InvalidSetting) as caught:
        ClaudeSessionsSettings(pool_size=0)
    assert str(caught.value) == "pool_size must be an integer >= 1, got 0"


def test_a_changed_variable_applies_to_the_next_read_without_reimport(monkeypatch) -> None:
    assert get_settings().pool_size == 4
    monkeypatch.setenv("CLAUDE_SESSIONS_POOL_SIZE", "7")
    assert get_settings().pool_size == 7
    monkeypatch.setenv("CLAUDE_SESSIONS_POOL_SIZE", "bad")
    with pytest.raises(InvalidSetting, match="CLAUDE_SESSIONS_POOL_SIZE"):
        get_settings()
    monkeypatch.delenv("CLAUDE_SESSIONS_POOL_SIZE")
    assert get_settings().pool_size == 4


def test_unchanged_environment_reuses_the_parsed_object(monkeypatch) -> None:
    first = get_settings()
    monkeypatch.setenv("UNRELATED_VARIABLE", "x")
    assert get_settings() is first  # cached: the column types read it once per stored value
    assert reload_settings() is not first
    assert reload_settings() == first
    started = time.perf_counter()
    for _ in range(1000):
        get_settings()
    per_call = (time.perf_counter() - started) / 1000
    assert per_call < 200e-6, f"a cached read took {per_call * 1e6:.0f} us"


def test_the_store_helpers_follow_the_settings(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CLAUDE_SESSIONS_HOME", str(tmp_path / "h"))
    assert sessions_home() == tmp_path / "h"
    assert database_url() == f"sqlite:///{tmp_path / 'h' / 'sessions.db'}"
    explicit = ClaudeSessionsSettings(home=tmp_path / "x", max_entry_bytes=10)
    assert database_url(explicit) == f"sqlite:///{tmp_path / 'x' / 'sessions.db'}"
    assert max_entry_bytes(explicit) == 10
    monkeypatch.setenv("CLAUDE_SESSIONS_MAX_ENTRY_BYTES", "2048")
    assert max_entry_bytes() == 2048


def test_a_store_built_after_a_change_uses_the_new_entry_limit(monkeypatch, tmp_path) -> None:
    """Through the real store: the limit comes from the settings of the moment."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    monkeypatch.setenv("CLAUDE_SESSIONS_MAX_ENTRY_BYTES", "300")
    small = SQLModelSessionStore(url)
    assert small.max_entry_bytes == 300
    monkeypatch.setenv("CLAUDE_SESSIONS_MAX_ENTRY_BYTES", "3000")
    assert SQLModelSessionStore(url).max_entry_bytes == 3000


def test_the_encryption_key_follows_the_variable(monkeypatch) -> None:
    assert configured_keys() is None
    first, second = generate_key(), generate_key()
    monkeypatch.setenv("CLAUDE_SESSIONS_ENCRYPTION_KEY", first)
    token = configured_keys().encrypt(b"x")  # type: ignore[union-attr]
    monkeypatch.setenv("CLAUDE_SESSIONS_ENCRYPTION_KEY", f"{second},{first}")
    keys = configured_keys()
    assert keys is not None and keys.decrypt(token) == b"x"
    explicit = ClaudeSessionsSettings(encryption_key=second)  # type: ignore[arg-type]
    assert encryption_configured(explicit)
    assert not encryption_configured(ClaudeSessionsSettings.from_environ({}))


def test_the_default_home_is_tilde_expanded_against_home_at_read_time(
    monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "a"))
    assert get_settings().home == Path(tmp_path / "a" / ".claude-sessions")
    monkeypatch.setenv("HOME", str(tmp_path / "b"))
    assert get_settings().home == Path(tmp_path / "b" / ".claude-sessions")
