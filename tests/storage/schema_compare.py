"""Comparing schemas: against the models (Alembic autogenerate) and against each other (reflection)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from prefect_claude_sessions.storage.metadata import TABLE_PREFIX, VERSION_TABLE, metadata


def plugin_names_only(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic ``include_name``: the plugin's tables only (the database may hold others)."""
    return type_ != "table" or name is None or name.startswith(TABLE_PREFIX)


def schema_diff(engine: sa.Engine) -> list:
    """What Alembic autogenerate would change to make the plugin's tables match the models."""
    with engine.connect() as conn:
        opts = {
            "compare_type": True,
            "version_table": VERSION_TABLE,
            "include_name": plugin_names_only,
        }
        return compare_metadata(MigrationContext.configure(conn, opts=opts), metadata)


def reflected_schema(engine: sa.Engine) -> dict[str, Any]:
    """Every table, column, key, constraint and index name the database reports (and sequences)."""
    insp = sa.inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        out[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                for c in insp.get_columns(table)
            ],
            "pk": (
                insp.get_pk_constraint(table)["name"],
                tuple(insp.get_pk_constraint(table)["constrained_columns"]),
            ),
            "fks": sorted(
                (
                    fk["name"],
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    (fk.get("options") or {}).get("ondelete"),
                )
                for fk in insp.get_foreign_keys(table)
            ),
            "uniques": sorted(
                (uq["name"], tuple(uq["column_names"])) for uq in insp.get_unique_constraints(table)
            ),
            "indexes": sorted(
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in insp.get_indexes(table)
            ),
        }
    if engine.dialect.name == "postgresql":
        out["sequences"] = sorted(insp.get_sequence_names())
    return out
