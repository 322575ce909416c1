"""How transcript entries become stored text and back: the one place serialisation lives.

Entries are stored as compact JSON text (:class:`JsonCodec`, the default). With an encryption key
configured (``CLAUDE_SESSIONS_ENCRYPTION_KEY`` or ``..._KEY_BLOCK``, see ``storage.encryption``)
the store uses :class:`EncryptingCodec`, which seals that text with Fernet; the entry's uuid stays
in its own clear column, so appends stay idempotent. Nothing else in ``storage`` serialises entries.

A stored text that cannot be turned back into an entry raises :class:`UndecodableEntry` naming its
position; the store turns that into ``CorruptEntry`` naming the session and the row.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.fernet import MultiFernet

from .encryption import (
    EncryptionError,
    encryption_configured,
    is_sealed,
    open_text,
    required_keys,
    seal_text,
)
from .errors import InvalidEntry, StorageError


class UndecodableEntry(StorageError):
    """Stored entry text #``index`` (of the texts given to ``decode_many``) cannot be decoded."""

    def __init__(self, index: int, reason: str) -> None:
        self.index = index
        self.reason = reason
        super().__init__(f"stored entry #{index} cannot be decoded: {reason}")


@dataclass(frozen=True)
class EncodedEntry:
    """One entry ready to store: its text, its UTF-8 size and its uuid (the idempotency key)."""

    text: str
    size: int
    uuid: str | None


class EntryCodec(Protocol):
    """Turns entries into stored text and stored text back into entries."""

    def encode(self, entry: Any, index: int, max_bytes: int) -> EncodedEntry: ...

    def decode_many(self, texts: list[str]) -> list[dict[str, Any]]: ...


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while decoding: a 10k-entry transcript makes ~10^5 containers, and the
    collections they trigger cost more than the decode itself (measured 180 ms vs 50 ms for 13 MB).
    JSON output has no cycles, so nothing is left for the collector to find."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class JsonCodec:
    """Plain JSON text: compact, non-ASCII kept as UTF-8, NaN/Infinity refused."""

    def encode(self, entry: Any, index: int, max_bytes: int) -> EncodedEntry:
        """Validate and serialise one entry; raise InvalidEntry naming ``index`` if it cannot be stored."""
        if not isinstance(entry, dict):
            raise InvalidEntry(index, f"expected a JSON object (dict), got {type(entry).__name__}")
        kind = entry.get("type")
        if not isinstance(kind, str) or not kind:
            raise InvalidEntry(index, "missing the required string field 'type'")
        entry_uuid = entry.get("uuid")
        if entry_uuid is not None and not isinstance(entry_uuid, str):
            raise InvalidEntry(
                index, f"field 'uuid' must be a string, got {type(entry_uuid).__name__}"
            )
        try:
            text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidEntry(
                index, f"not JSON-serialisable ({type(exc).__name__}: {exc})"
            ) from exc
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: keep them, escaped
            text = json.dumps(entry, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
            data = text.encode("utf-8")
        if len(data) > max_bytes:
            raise InvalidEntry(
                index, f"entry is {len(data)} bytes, larger than the {max_bytes}-byte limit"
            )
        return EncodedEntry(text=text, size=len(data), uuid=entry_uuid or None)

    def decode_many(self, texts: list[str]) -> list[dict[str, Any]]:
        """Decode stored texts in order; one ``json.loads`` for the lot is ~2x faster than one each.

        A text that is not a JSON object raises UndecodableEntry with its index (found by a
        second, per-entry pass that only runs when the fast path failed).
        """
        if not texts:
            return []
        try:
            with _gc_paused():
                decoded = json.loads("[" + ",".join(texts) + "]")
        except (ValueError, RecursionError):
            decoded = None
        if (
            decoded is None
            or len(decoded) != len(texts)
            or not all(isinstance(e, dict) for e in decoded)
        ):
            _raise_first_undecodable(texts)
        return decoded


def _decode_one(text: str) -> dict[str, Any]:
    if is_sealed(text):
        raise ValueError(
            "it is encrypted at rest and this store has no key (set CLAUDE_SESSIONS_ENCRYPTION_KEY "
            "or CLAUDE_SESSIONS_ENCRYPTION_KEY_BLOCK)"
        )
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, found a JSON {type(value).__name__}")
    return value


def _raise_first_undecodable(texts: list[str]) -> None:
    for index, text in enumerate(texts):
        try:
            _decode_one(text)
        except (ValueError, RecursionError) as exc:
            shown = text[:40] + ("..." if len(text) > 40 else "")
            raise UndecodableEntry(index, f"{exc} (stored text starts {shown!r})") from None
    raise UndecodableEntry(0, "the stored texts do not form a JSON list")  # pragma: no cover


class EncryptingCodec:
    """JSON text sealed with Fernet (the first of ``keys`` encrypts, any one decrypts).

    ``keys=None`` reads them from the environment on use (``storage.encryption``). The reported
    ``size`` is the plaintext JSONL size, so transcript sizes mean the same with or without
    encryption. Texts stored in clear before encryption was turned on still decode.
    """

    def __init__(self, keys: MultiFernet | None = None) -> None:
        self._keys = keys
        self._json = JsonCodec()

    @property
    def keys(self) -> MultiFernet:
        return required_keys(self._keys)

    def encode(self, entry: Any, index: int, max_bytes: int) -> EncodedEntry:
        plain = self._json.encode(entry, index, max_bytes)
        return EncodedEntry(text=seal_text(plain.text, self.keys), size=plain.size, uuid=plain.uuid)

    def decode_many(self, texts: list[str]) -> list[dict[str, Any]]:
        opened: list[str] = []
        for index, text in enumerate(texts):
            if not is_sealed(text):
                opened.append(text)
                continue
            try:
                opened.append(open_text(text, self.keys))
            except EncryptionError as exc:
                raise UndecodableEntry(index, str(exc)) from None
        return self._json.decode_many(opened)


def encode_json_value(value: Any, what: str) -> Any:
    """Check that a payload (e.g. a decision) is JSON; return a plain-JSON copy of it."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{what} is not JSON-serialisable ({type(exc).__name__}: {exc})") from exc


default_codec: EntryCodec = JsonCodec()


def codec_from_environment() -> EntryCodec:
    """:class:`EncryptingCodec` when an encryption key is configured, else :data:`default_codec`."""
    return EncryptingCodec() if encryption_configured() else default_codec


__all__ = [
    "EncodedEntry",
    "EncryptingCodec",
    "EntryCodec",
    "JsonCodec",
    "UndecodableEntry",
    "codec_from_environment",
    "default_codec",
    "encode_json_value",
]
