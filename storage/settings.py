"""The one settings object: every ``CLAUDE_SESSIONS_*`` environment variable, parsed and
validated in one place.

Each field is read from ``CLAUDE_SESSIONS_<FIELD NAME IN CAPITALS>`` (``pool_size`` from
``CLAUDE_SESSIONS_POOL_SIZE``; exactly that spelling, as every other variable of a POSIX
environment). An unset, empty or blank variable means the default.

`get_settings` reads the environment at call time, so a changed variable takes effect for the
next operation (no re-import, no restart). Parsing is cached per distinct environment: the
column types ask for the encryption keys once per stored value, and a fresh parse costs tens of
microseconds while the cache lookup costs a few.

This module lives in ``storage`` because it is the lowest layer: ``storage``, ``tasks`` and
``flows`` can all import it without cycles. Variables that are not ours (``ANTHROPIC_*``,
``CLAUDE_CONFIG_DIR``, ``PREFECT_*``) are not read here: they reach the CLI untouched.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AliasGenerator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .errors import InvalidSetting

__all__ = ["ENV_PREFIX", "ClaudeSessionsSettings", "env_name", "get_settings", "reload_settings"]

ENV_PREFIX = "CLAUDE_SESSIONS_"

#: Variables outside our prefix that change a default (``home`` expands ``~``).
_ALSO_READ = ("HOME",)

#: Fields whose value must never be shown in an error message (keys; URLs with passwords).
_SECRET_FIELDS = frozenset({"encryption_key", "database_url"})


def env_name(field: str) -> str:
    """The environment variable of a settings field: ``pool_size`` -> ``CLAUDE_SESSIONS_POOL_SIZE``."""
    return ENV_PREFIX + field.upper()


def _meta(expected: str, doc_default: str | None = None) -> dict[str, Any]:
    """Per-field metadata: what a bad value should have been (for the error message) and, when
    the raw default says little (None, a computed path), how the README shows the default."""
    extra: dict[str, Any] = {"expected": expected}
    if doc_default is not None:
        extra["doc_default"] = doc_default
    return extra


class ClaudeSessionsSettings(BaseSettings):
    """Configuration of prefect-claude-sessions, from ``CLAUDE_SESSIONS_*`` variables.

    Build one with keyword arguments to configure code explicitly
    (``ClaudeSessionsSettings(pool_size=2)``); `get_settings` builds it from the environment.
    """

    model_config = SettingsConfigDict(
        # Exact, upper-case names (CLAUDE_SESSIONS_POOL_SIZE): the alias of each field is its
        # variable, so the cache key in `get_settings` can look up exactly those names.
        alias_generator=AliasGenerator(validation_alias=env_name),
        populate_by_name=True,
        case_sensitive=True,
        env_ignore_empty=True,
        extra="ignore",  # e.g. CLAUDE_SESSIONS_TEST_POSTGRES, a test-suite variable
        frozen=True,
        validate_default=True,
    )

    # --- the store -----------------------------------------------------------------------------
    database_url: str | None = Field(
        default=None,
        description="the store, any SQLAlchemy URL (`sqlite:///...`, `postgresql://...`)",
        json_schema_extra=_meta(
            "a SQLAlchemy URL", "`sqlite:///$CLAUDE_SESSIONS_HOME/sessions.db`"
        ),
    )
    home: Path = Field(
        default=Path("~/.claude-sessions"),
        description="folder of the default SQLite store (and of the demo's Prefect server and workspace)",
        json_schema_extra=_meta("a folder path", "`~/.claude-sessions`"),
    )
    max_entry_bytes: int = Field(
        default=8 * 1024 * 1024,
        gt=0,
        description="largest single transcript entry the store accepts, in bytes",
        json_schema_extra=_meta("an integer number of bytes > 0"),
    )
    encryption_key: SecretStr | None = Field(
        default=None,
        description="opt-in encryption at rest: comma-separated Fernet keys, newest first (see Security)",
        json_schema_extra=_meta("comma-separated Fernet keys", "off"),
    )
    encryption_key_block: str | None = Field(
        default=None,
        description="opt-in encryption at rest: name of a Prefect `Secret` block holding that key list",
        json_schema_extra=_meta("the name of a Prefect Secret block", "off"),
    )

    # --- sessions and turns --------------------------------------------------------------------
    credentials_block: str | None = Field(
        default=None,
        description="name of a saved `ClaudeCredentials` block to take the key (and base URL) from",
        json_schema_extra=_meta("the name of a ClaudeCredentials block", "-"),
    )
    claim_ttl: float = Field(
        default=120.0,
        gt=0,
        description="seconds a worker's claim on a session (one writer per session) lasts without renewal",
        json_schema_extra=_meta("a number of seconds > 0"),
    )
    busy_timeout: float = Field(
        default=60.0,
        ge=0,
        description="seconds a task waits for a session another worker is writing",
        json_schema_extra=_meta("a number of seconds >= 0"),
    )
    pool_size: int = Field(
        default=4,
        ge=1,
        description="warm Claude Code CLI processes kept per worker process",
        json_schema_extra=_meta("an integer >= 1"),
    )
    pool_idle_s: float = Field(
        default=300.0,
        gt=0,
        description="seconds an idle warm CLI is kept",
        json_schema_extra=_meta("a number of seconds > 0"),
    )
    turn_timeout_s: float = Field(
        default=1800.0,
        ge=0,
        description="upper bound of one turn, seconds (0 = none)",
        json_schema_extra=_meta("a number of seconds >= 0 (0 = no limit)"),
    )
    first_message_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="seconds the CLI may take to acknowledge a prompt",
        json_schema_extra=_meta("a number of seconds > 0"),
    )
    max_prompt_chars: int = Field(
        default=200_000,
        ge=1,
        description="largest prompt accepted, in characters",
        json_schema_extra=_meta("an integer number of characters >= 1"),
    )
    redact: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description=(
            "redactors applied to decision payloads before they are stored, comma-separated "
            "(`contacts`: e-mail addresses and phone numbers)"
        ),
        json_schema_extra=_meta("comma-separated redactor names", "none"),
    )
    report_interval_s: float = Field(
        default=5.0,
        ge=0,
        description="seconds between two publications of a flow run's session report artifact",
        json_schema_extra=_meta("a number of seconds >= 0"),
    )
    dashboard_text: bool = Field(
        default=True,
        description="show answer excerpts in task logs, run reports and outcome artifacts "
        "(they live in Prefect's database, where a purge cannot reach; `false` for sensitive data)",
        json_schema_extra=_meta("true or false", "true"),
    )

    def __init__(self, **values: Any) -> None:
        """Read the environment (keyword arguments take precedence); `InvalidSetting` names each
        bad variable (or keyword) and what it expects, instead of pydantic's error dump."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _explain(exc) from None

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        # env_ignore_empty drops "" but not "  "; a blank value means "not set" as well, as it
        # did before (a stray space in a .env file must not turn into a path or a bad number).
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data

    @field_validator("database_url", "credentials_block", "encryption_key_block", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("encryption_key", mode="before")
    @classmethod
    def _strip_secret(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("redact", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(n.strip() for n in value.split(",") if n.strip())
        return value

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ClaudeSessionsSettings:
        """The settings an environment ``environ`` describes (e.g. one built for a child process
        or given to `resolve_credentials`), instead of this process's own environment.

        Raises `InvalidSetting` like `get_settings`.
        """
        names = set(_watched())
        given: dict[str, Any] = {k: v for k, v in environ.items() if k in names}
        parsed = _FromMapping(**given)
        return ClaudeSessionsSettings.model_construct(**dict(parsed))  # validated just above

    def sqlite_url(self) -> str:
        """The URL of the default SQLite store under `home` (its folder is not created here)."""
        return f"sqlite:///{self.home / 'sessions.db'}"


class _FromMapping(ClaudeSessionsSettings):
    """The same fields and checks, fed only by keyword arguments (not by ``os.environ``)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _explain(exc: ValidationError) -> InvalidSetting:
    """One `InvalidSetting` naming every bad variable and what it should have been."""
    fields = ClaudeSessionsSettings.model_fields
    problems: list[tuple[str, str, str | None]] = []
    by_env = {env_name(f): f for f in fields}
    for error in exc.errors():
        # the location is the key the value came in under: the variable, or a keyword argument
        where = str(error["loc"][0]) if error["loc"] else "settings"
        field = by_env.get(where, where)
        info = fields.get(field)
        extra = info.json_schema_extra if info is not None else None
        expected = extra.get("expected") if isinstance(extra, dict) else None
        got = None if field in _SECRET_FIELDS else repr(error.get("input"))
        problems.append((where, str(expected or error["msg"]), got))
    return InvalidSetting(problems)


_cache_lock = threading.Lock()
_cache: tuple[tuple[object, ...], ClaudeSessionsSettings] | None = None


def _snapshot() -> tuple[object, ...]:
    """The values of the variables the settings depend on, as a cache key.

    Looked up by name, so a change elsewhere keeps the cached object. The column types ask for
    the encryption keys once per stored value, so this runs per row: on POSIX it reads
    ``os.environ._data`` (the bytes mapping that ``os.environ`` itself reads and writes; every
    ``os.environ[...] = ...``, ``monkeypatch.setenv`` and ``del`` updates it), ~1 us for all
    names, where ``os.environ.get`` costs ~1.5 us per name (it encodes the key and raises a
    ``KeyError`` for each unset one).
    """
    data = getattr(os.environ, "_data", None)
    if os.name == "posix" and isinstance(data, dict):
        get = data.get
        return tuple(get(name) for name in _watched_bytes())
    getenv = os.environ.get
    return tuple(getenv(name) for name in _watched())


@functools.lru_cache(maxsize=1)
def _watched() -> tuple[str, ...]:
    return (*(env_name(f) for f in ClaudeSessionsSettings.model_fields), *_ALSO_READ)


@functools.lru_cache(maxsize=1)
def _watched_bytes() -> tuple[bytes, ...]:
    return tuple(os.fsencode(name) for name in _watched())


def get_settings() -> ClaudeSessionsSettings:
    """The settings as the environment holds them now.

    Re-parsed whenever a ``CLAUDE_SESSIONS_*`` variable (or ``HOME``) changed since the last call,
    so a variable set by a test, a flow or an operator takes effect for the next operation.
    Raises `InvalidSetting` (a ``ValueError``) naming each bad variable and what it expects.
    """
    global _cache
    key = _snapshot()
    cached = _cache
    if cached is not None and cached[0] == key:
        return cached[1]
    settings = ClaudeSessionsSettings()
    with _cache_lock:
        _cache = (key, settings)
    return settings


def reload_settings() -> ClaudeSessionsSettings:
    """Forget the cached settings and parse the environment again (rarely needed:
    `get_settings` notices changed variables on its own)."""
    global _cache
    with _cache_lock:
        _cache = None
    return get_settings()
