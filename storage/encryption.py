"""Encryption at rest (opt-in): the keys, sealing of text, and the sealed column types.

Turn it on with ``CLAUDE_SESSIONS_ENCRYPTION_KEY`` (one or more comma-separated Fernet keys,
newest first) or with ``CLAUDE_SESSIONS_ENCRYPTION_KEY_BLOCK`` (the name of a Prefect ``Secret``
block holding that same comma-separated string). New data is encrypted with the first key; any
listed key decrypts (``MultiFernet``), so a key can be rotated without downtime (see
``storage.rotation.reencrypt_all`` and docs/SECURITY.md).

What is sealed: transcript entry bodies (by ``codec.EncryptingCodec``), decision payloads, turn
answers and errors, and transcript summaries (by the column types below). Ids, keys, labels,
times, costs and entry uuids stay in clear: they are what queries and idempotency need.

A sealed text is ``"fernet:" + token``; a sealed JSON document is ``{"$sealed": "fernet:..."}``.
Values written before encryption was turned on stay readable; ``reencrypt_all`` seals them.
"""

from __future__ import annotations

import functools
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeGuard, cast

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.dialects.postgresql import JSONB

from .errors import StorageError
from .settings import ClaudeSessionsSettings, env_name, get_settings

ENCRYPTION_KEY_ENV = env_name("encryption_key")
ENCRYPTION_KEY_BLOCK_ENV = env_name("encryption_key_block")

SEALED_PREFIX = "fernet:"
"""Start of every sealed text (a transcript entry body or a sealed text column)."""

SEALED_KEY = "$sealed"
"""The one key of a sealed JSON document: ``{"$sealed": "fernet:<token>"}``."""


class EncryptionError(StorageError):
    """Encryption is misconfigured (bad key, missing block) or a value cannot be decrypted."""


def generate_key() -> str:
    """A new random Fernet key (URL-safe base64 text), for ``CLAUDE_SESSIONS_ENCRYPTION_KEY``."""
    return Fernet.generate_key().decode("ascii")


def parse_keys(raw: str | list[str], *, source: str = ENCRYPTION_KEY_ENV) -> MultiFernet:
    """``MultiFernet`` of comma-separated (or listed) Fernet keys, newest first.

    The error names the position of a bad key, never the key itself.
    """
    parts = raw.split(",") if isinstance(raw, str) else list(raw)
    keys = [p.strip() for p in parts if p and p.strip()]
    if not keys:
        raise EncryptionError(f"{source} holds no encryption key")
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode("ascii")))
        except (ValueError, TypeError, UnicodeEncodeError):
            raise EncryptionError(
                f"{source}: key #{position} is not a Fernet key (32 url-safe base64-encoded "
                "bytes; make one with storage.encryption.generate_key())"
            ) from None
    return MultiFernet(fernets)


@functools.lru_cache(maxsize=8)
def _keys_from_text(raw: str) -> MultiFernet:
    return parse_keys(raw)


@functools.lru_cache(maxsize=8)
def _keys_from_block(name: str) -> MultiFernet:
    def load() -> Any:
        from prefect.blocks.system import Secret

        # no event loop on this thread: load returns the block, not a coroutine
        return cast("Secret[Any]", Secret.load(name)).get()

    # On a thread of its own: Block.load dispatches on a running event loop.
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            value = pool.submit(load).result()
    except Exception as exc:
        raise EncryptionError(
            f"cannot load the encryption key from Prefect Secret block {name!r} "
            f"({ENCRYPTION_KEY_BLOCK_ENV}): {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(value, (str, list)):
        raise EncryptionError(
            f"Prefect Secret block {name!r} must hold comma-separated Fernet keys as a string, "
            f"got {type(value).__name__}"
        )
    return parse_keys(value, source=f"Secret block {name!r}")


def encryption_configured(settings: ClaudeSessionsSettings | None = None) -> bool:
    """True when a key (or a key block) is configured: new data will be encrypted."""
    settings = settings or get_settings()
    return bool(settings.encryption_key or settings.encryption_key_block)


def configured_keys(settings: ClaudeSessionsSettings | None = None) -> MultiFernet | None:
    """The keys from the settings (or the named Secret block), or None if encryption is off.

    Cached per configured value, so changing the variable takes effect at once; call
    :func:`reset_key_cache` after changing the contents of a Secret block.
    """
    settings = settings or get_settings()
    if settings.encryption_key is not None:
        return _keys_from_text(settings.encryption_key.get_secret_value())
    if settings.encryption_key_block:
        return _keys_from_block(settings.encryption_key_block)
    return None


def reset_key_cache() -> None:
    """Forget cached keys (e.g. after the Secret block was updated with a new key list)."""
    _keys_from_text.cache_clear()
    _keys_from_block.cache_clear()


def required_keys(keys: MultiFernet | None = None) -> MultiFernet:
    """``keys``, else the configured keys; EncryptionError if there are none."""
    found = keys or configured_keys()
    if found is None:
        raise EncryptionError(
            f"this data is encrypted at rest and no key is configured: set {ENCRYPTION_KEY_ENV} "
            f"(or {ENCRYPTION_KEY_BLOCK_ENV}) to the key list it was written with"
        )
    return found


def is_sealed(text: object) -> TypeGuard[str]:
    return isinstance(text, str) and text.startswith(SEALED_PREFIX)


def seal_text(text: str, keys: MultiFernet) -> str:
    """``text`` encrypted with the first key, as ``fernet:<token>``."""
    # surrogatepass: a lone surrogate (valid in a Python str and in JSON) survives the trip
    return SEALED_PREFIX + keys.encrypt(text.encode("utf-8", "surrogatepass")).decode("ascii")


def open_text(sealed: str, keys: MultiFernet | None = None) -> str:
    """The plaintext of a sealed text; EncryptionError if no configured key opens it."""
    token = sealed[len(SEALED_PREFIX) :].encode("ascii", "replace")
    try:
        return required_keys(keys).decrypt(token).decode("utf-8", "surrogatepass")
    except InvalidToken:
        raise EncryptionError(
            "a value encrypted at rest cannot be decrypted with any configured key "
            f"({ENCRYPTION_KEY_ENV} lacks the key it was written with, or the value is damaged)"
        ) from None


def is_sealed_document(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and is_sealed(value.get(SEALED_KEY))


def seal_document(value: Any, keys: MultiFernet) -> dict[str, str]:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return {SEALED_KEY: seal_text(text, keys)}


def open_document(value: dict[str, str], keys: MultiFernet | None = None) -> Any:
    return json.loads(open_text(value[SEALED_KEY], keys))


class SealedText(sa.TypeDecorator[str]):
    """Text, encrypted when a key is configured; clear text written earlier still reads."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        keys = configured_keys()
        if value is None or keys is None:
            return value
        return seal_text(value, keys)

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return open_text(value) if is_sealed(value) else value


class SealedJSON(sa.TypeDecorator[Any]):
    """A JSON document (``jsonb`` on PostgreSQL), stored as ``{"$sealed": ...}`` when a key is
    configured. Plain documents written before encryption was turned on still read."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        keys = configured_keys()
        if value is None or keys is None:
            return value
        return seal_document(value, keys)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return open_document(value) if is_sealed_document(value) else value


__all__ = [
    "ENCRYPTION_KEY_BLOCK_ENV",
    "ENCRYPTION_KEY_ENV",
    "SEALED_KEY",
    "SEALED_PREFIX",
    "EncryptionError",
    "SealedJSON",
    "SealedText",
    "configured_keys",
    "encryption_configured",
    "generate_key",
    "is_sealed",
    "is_sealed_document",
    "open_document",
    "open_text",
    "parse_keys",
    "required_keys",
    "reset_key_cache",
    "seal_document",
    "seal_text",
]
