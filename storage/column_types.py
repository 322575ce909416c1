"""Column types shared by the tables: UTC datetimes, JSON (JSONB on PostgreSQL), big integers."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

UTC = timezone.utc


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (every stored time is one of these)."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as UTC
    and given back their ``tzinfo`` on load. Naive datetimes passed in are taken to be UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONColumn = sa.JSON().with_variant(JSONB(), "postgresql")
"""JSON documents: ``jsonb`` on PostgreSQL, JSON text elsewhere."""

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""An autoincrementing 64-bit key (SQLite only autoincrements ``INTEGER PRIMARY KEY``)."""
