"""The plugin keeps out of its user's SQLModel world: own metadata, prefixed names, own version table.

The user's models below are ordinary SQLModel tables on the global ``SQLModel.metadata``, named
like the plugin's tables used to be (``sessions``, ``checkpoints``), with their own
``alembic_version``; they share one process and one database with the plugin.
"""

from __future__ import annotations

import json
import subprocess
import sys

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from prefect_claude_sessions.storage import (
    SessionOrigin,
    checkpoints,
    get_engine,
    open_db,
    sessions,
)
from prefect_claude_sessions.storage.metadata import (
    POSTGRES_IDENTIFIER_LIMIT,
    TABLE_PREFIX,
    VERSION_TABLE,
    metadata,
)
from prefect_claude_sessions.storage.models import CheckpointRecord, SessionRecord, table_of
from sqlmodel import Field, Session, SQLModel, select

from .schema_compare import schema_diff


class Sessions(SQLModel, table=True):
    """The user's own ``sessions`` table (say, web logins)."""

    __tablename__ = "sessions"
    id: int | None = Field(default=None, primary_key=True)
    login: str


class Checkpoint(SQLModel, table=True):
    """The user's own ``checkpoints`` table, pointing at their own ``sessions``."""

    __tablename__ = "checkpoints"
    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="sessions.id")
    label: str


SID = "6f1c9b8e-0000-4000-8000-0000000000dd"


def test_user_tables_named_like_the_plugins_coexist_in_one_database(database_url) -> None:
    user_engine = sa.create_engine(database_url)
    try:
        SQLModel.metadata.create_all(user_engine, tables=[table_of(Sessions), table_of(Checkpoint)])
        with user_engine.begin() as conn:  # the user's own Alembic history, at their revision
            conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            conn.execute(sa.text("INSERT INTO alembic_version VALUES ('user_rev_42')"))
        with Session(user_engine) as db:
            login = Sessions(login="ada")
            db.add(login)
            db.flush()
            db.add(Checkpoint(session_id=login.id, label="user-checkpoint"))
            db.commit()

        engine = get_engine(database_url)  # the plugin installs beside them
        with open_db(engine) as db:
            sessions.create_session(
                db, id=SID, project_key="p", agent_name="a", origin=SessionOrigin.init
            )
            checkpoints.create_checkpoint(
                db, session_id=SID, transcript_uuid="u-1", label="plugin-checkpoint"
            )

        with Session(user_engine) as db:  # the user's rows are theirs alone
            assert [c.label for c in db.exec(select(Checkpoint)).all()] == ["user-checkpoint"]
            assert [s.login for s in db.exec(select(Sessions)).all()] == ["ada"]
        with open_db(engine) as db:  # and the plugin's are the plugin's
            assert [c.label for c in checkpoints.list_checkpoints(db, SID)] == ["plugin-checkpoint"]
            assert db.exec(select(SessionRecord)).one().id == SID
        with user_engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [
                ("user_rev_42",)
            ]
        names = set(sa.inspect(user_engine).get_table_names())
        assert {"sessions", "checkpoints", "alembic_version", VERSION_TABLE} <= names
        assert schema_diff(engine) == []  # the plugin's schema is whole

        # The user's autogenerate sees none of the plugin's tables to create, and nothing at
        # all once it skips the documented prefix.
        with user_engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"include_name": _user_names_only})
            assert compare_metadata(ctx, SQLModel.metadata) == []
            unfiltered = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        assert not [d for d in unfiltered if d[0] == "add_table"]
    finally:
        user_engine.dispose()


def _user_names_only(name, type_, parent_names) -> bool:
    """What a user's env.py does: skip the plugin's tables (and its version table)."""
    return not (type_ == "table" and name is not None and name.startswith(TABLE_PREFIX))


def test_sqlmodel_metadata_holds_no_plugin_table_and_keeps_its_naming_convention() -> None:
    # In this process (where the user's models above live on SQLModel.metadata):
    assert not [n for n in SQLModel.metadata.tables if n.startswith(TABLE_PREFIX)]
    assert SQLModel.metadata.naming_convention == sa.MetaData().naming_convention
    assert table_of(CheckpointRecord).metadata is metadata
    assert set(SQLModel.metadata.tables) >= {"sessions", "checkpoints"}
    # In a fresh interpreter that imports every part of the plugin, nothing at all:
    code = (
        "import json, prefect_claude_sessions.storage, prefect_claude_sessions.tasks, "
        "prefect_claude_sessions.flows\n"
        "from sqlmodel import SQLModel\n"
        "print(json.dumps([sorted(SQLModel.metadata.tables), "
        "dict(SQLModel.metadata.naming_convention)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    tables, convention = json.loads(out.stdout.strip().splitlines()[-1])
    assert tables == []
    assert convention == dict(sa.MetaData().naming_convention)


def test_every_plugin_name_is_prefixed_and_fits_postgres() -> None:
    names = [VERSION_TABLE, f"{VERSION_TABLE}_pkc"]
    for table in metadata.sorted_tables:
        names.append(table.name)
        names += [str(c.name) for c in table.constraints]
        names += [str(i.name) for i in table.indexes]
        names += [  # PostgreSQL's BIGSERIAL sequences
            f"{table.name}_{c.name}_seq"
            for c in table.primary_key.columns
            if isinstance(c.type, sa.Integer)
        ]
    assert len(metadata.tables) == 7
    for name in names:
        assert TABLE_PREFIX in name, name
        assert len(name) <= POSTGRES_IDENTIFIER_LIMIT, name


def test_postgres_keeps_every_name_whole(postgres_url) -> None:
    """PostgreSQL truncates long names silently: the database must report the models' names."""
    insp = sa.inspect(get_engine(postgres_url))
    for table in metadata.sorted_tables:
        reported = {i["name"] for i in insp.get_indexes(table.name)}
        reported |= {u["name"] for u in insp.get_unique_constraints(table.name)}
        reported |= {f["name"] for f in insp.get_foreign_keys(table.name)}
        reported.add(insp.get_pk_constraint(table.name)["name"])
        expected = {str(c.name) for c in table.constraints if not isinstance(c, sa.CheckConstraint)}
        expected |= {str(i.name) for i in table.indexes}
        assert reported == expected, table.name
