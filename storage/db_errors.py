"""Turning driver errors into :class:`StorageError` subclasses that name the database and the cause."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from .config import masked_url, scrub_url_secrets
from .errors import DatabaseReadOnly, DatabaseUnavailable, StorageError

# SQLSTATEs meaning "cannot reach / open / log in to the database" (PostgreSQL).
_UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03", "3D000", "28000", "28P01", "53300"}
_SQLITE_UNAVAILABLE = ("unable to open database", "disk i/o error", "file is not a database")


def storage_error_for(error: BaseException, url: str) -> StorageError | None:
    """The StorageError that explains ``error`` (a SQLAlchemy/driver error), or None if not one."""
    shown = masked_url(url)
    if isinstance(error, StorageError):
        return None
    if isinstance(error, sa_exc.TimeoutError):
        return DatabaseUnavailable(
            shown, scrub_url_secrets(f"no connection free in the pool ({error})", url)
        )
    if not isinstance(error, sa_exc.DBAPIError):
        return None
    orig = error.orig
    detail = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    detail = scrub_url_secrets(detail, url)
    lowered = str(orig).lower()
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if sqlstate == "25006" or "readonly database" in lowered or "read-only" in lowered:
        return DatabaseReadOnly(shown, detail)
    is_sqlite = url.startswith("sqlite")
    if is_sqlite and any(s in lowered for s in _SQLITE_UNAVAILABLE):
        return DatabaseUnavailable(shown, detail)
    if isinstance(error, sa_exc.OperationalError):
        if "database is locked" in lowered:
            return StorageError(
                f"database {shown} stayed locked by another writer past the busy timeout: {detail}"
            )
        if (
            error.connection_invalidated
            or (not is_sqlite and (not sqlstate or sqlstate.startswith("08")))
            or sqlstate in _UNAVAILABLE_SQLSTATES
        ):
            return DatabaseUnavailable(shown, detail)
    return StorageError(f"database {shown} error ({type(orig).__name__}): {detail}")


@contextmanager
def translated_errors(url: str) -> Iterator[None]:
    """Re-raise database errors inside the block as StorageError subclasses (cause chained)."""
    try:
        yield
    except Exception as exc:
        mapped = storage_error_for(exc, url)
        if mapped is None:
            raise
        raise mapped from exc
