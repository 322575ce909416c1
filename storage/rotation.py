"""Key rotation: re-encrypt every sealed value of the store with the newest key.

Rotation, step by step (docs/SECURITY.md):

1. put the new key first in ``CLAUDE_SESSIONS_ENCRYPTION_KEY`` (``new,old``) on every worker:
   new data is sealed with ``new``, old data still opens with ``old``;
2. run :func:`reencrypt_all` (``claude-sessions rotate-key``): every value sealed with another key
   is re-sealed with ``new``, and values still in clear (written before encryption was turned on)
   are sealed;
3. drop ``old`` from the list.

The work goes in batches, one transaction each, so it can run beside live workers and be
interrupted and re-run (a value already under the newest key is left alone).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .column_types import JSONColumn
from .config import masked_url
from .db_errors import translated_errors
from .encryption import (
    SEALED_KEY,
    SEALED_PREFIX,
    EncryptionError,
    is_sealed,
    is_sealed_document,
    parse_keys,
    required_keys,
    seal_document,
    seal_text,
)
from .engine import engine_url, get_engine
from .metadata import table_name as prefixed

# (table, primary key, column, kind): every value the store seals. Plain column types here, so
# the raw stored values are read and written (the Sealed* types would decrypt on the way).
# Tables by their unprefixed names, which also label the report ("turns.result_text").
_TEXT = "text"
_JSON = "json"
_SEALED_COLUMNS: list[tuple[str, str, str, str]] = [
    ("transcript_entries", "seq", "body", _TEXT),
    ("decisions", "id", "payload", _JSON),
    ("turns", "id", "result_text", _TEXT),
    ("turns", "id", "error", _TEXT),
    ("transcript_keys", "id", "summary", _JSON),
]


@dataclass
class RotationReport:
    """What :func:`reencrypt_all` did, per ``table.column``."""

    resealed: dict[str, int] = field(default_factory=dict)
    """Values re-encrypted from an older key to the newest."""
    sealed: dict[str, int] = field(default_factory=dict)
    """Values that were in clear and are now encrypted."""
    current: dict[str, int] = field(default_factory=dict)
    """Values already encrypted with the newest key (left alone)."""

    @property
    def changed(self) -> int:
        return sum(self.resealed.values()) + sum(self.sealed.values())


def _under_primary(primary: Fernet, token: bytes) -> bool:
    try:
        primary.decrypt(token)
        return True
    except InvalidToken:
        return False


def _rekey_text(keys: MultiFernet, primary: Fernet, value: str) -> tuple[str, str | None]:
    """(outcome, new stored value or None if unchanged) for a text value."""
    if is_sealed(value):
        token = value[len(SEALED_PREFIX) :].encode("ascii")
        if _under_primary(primary, token):
            return "current", None
        try:
            return "resealed", SEALED_PREFIX + keys.rotate(token).decode("ascii")
        except InvalidToken:
            raise EncryptionError(
                "a stored value cannot be decrypted with any of the given keys; "
                "add the key it was written with to the list"
            ) from None
    return "sealed", seal_text(value, keys)


def _rekey_json(keys: MultiFernet, primary: Fernet, value: Any) -> tuple[str, Any]:
    if is_sealed_document(value):
        outcome, text = _rekey_text(keys, primary, value[SEALED_KEY])
        return outcome, None if text is None else {SEALED_KEY: text}
    return "sealed", seal_document(value, keys)


def reencrypt_all(
    url_or_engine: str | sa.Engine | None = None,
    *,
    keys: MultiFernet | str | list[str] | None = None,
    batch_size: int = 500,
    progress: Callable[[str, int], None] | None = None,
) -> RotationReport:
    """Re-encrypt every sealed value with the newest key and seal values still in clear.

    ``keys``: a ``MultiFernet`` or the comma-separated key list, newest first (default: the
    configured keys, ``CLAUDE_SESSIONS_ENCRYPTION_KEY`` / ``..._KEY_BLOCK``). Any listed key may
    open a value; the first seals it. Idempotent: a second run changes nothing. EncryptionError
    (and nothing of the failing batch written) if a value opens with none of the keys.
    ``progress(table_column, rows_done)`` is called after each batch.
    """
    if isinstance(keys, (str, list)):
        keys = parse_keys(keys, source="reencrypt_all(keys=...)")
    multi = required_keys(keys)
    primary: Fernet = multi._fernets[0]  # the key new values are sealed with
    engine = url_or_engine if isinstance(url_or_engine, sa.Engine) else get_engine(url_or_engine)
    report = RotationReport()
    with translated_errors(engine_url(engine)):
        for table_name, pk_name, column, kind in _SEALED_COLUMNS:
            name = f"{table_name}.{column}"
            col_type: Any = sa.Text() if kind == _TEXT else JSONColumn
            table = sa.table(prefixed(table_name), sa.column(pk_name), sa.column(column, col_type))
            pk, col = table.c[pk_name], table.c[column]
            counts = {"resealed": 0, "sealed": 0, "current": 0}
            last: Any = None
            done = 0
            while True:
                with engine.begin() as conn:
                    query = sa.select(pk, col).where(col.is_not(None))
                    if last is not None:
                        query = query.where(pk > last)
                    rows = conn.execute(query.order_by(pk).limit(batch_size)).all()
                    if not rows:
                        break
                    for row_pk, value in rows:
                        if value is None:
                            continue
                        rekey = _rekey_text if kind == _TEXT else _rekey_json
                        outcome, new = rekey(multi, primary, value)
                        counts[outcome] += 1
                        if new is not None:
                            conn.execute(sa.update(table).where(pk == row_pk).values({column: new}))
                    last = rows[-1][0]
                    done += len(rows)
                if progress is not None:
                    progress(name, done)
            report.resealed[name] = counts["resealed"]
            report.sealed[name] = counts["sealed"]
            report.current[name] = counts["current"]
    return report


def describe(report: RotationReport, url: str) -> str:
    """One line per column, for a command's output."""
    lines = [f"re-encryption of {masked_url(url)}:"]
    for name in report.resealed:
        lines.append(
            f"  {name}: {report.resealed[name]} re-encrypted, {report.sealed[name]} newly "
            f"encrypted, {report.current[name]} already current"
        )
    return "\n".join(lines)


__all__ = ["RotationReport", "describe", "reencrypt_all"]
