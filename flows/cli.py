"""The `claude-sessions` command: look into the session store, export and purge transcripts, and
run the demo.

Each command is thin: the functions above the commands read the store (through the `storage`
repositories) and return plain data; the commands print it as rich tables or, with ``--json``,
as JSON. Bad input (a malformed or unknown id, an unreachable database) ends with a one-line
error on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import json
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import sqlalchemy.exc
import typer
from prefect_claude_sessions.flows.lineage_view import lineage, lineage_tree_view, root_of
from prefect_claude_sessions.storage import (
    SessionBusy,
    SessionRecord,
    SessionStatus,
    SQLModelSessionStore,
    StorageError,
    checkpoints,
    database_url,
    decisions,
    open_db,
    sessions,
    turns,
)
from prefect_claude_sessions.storage.config import masked_url
from prefect_claude_sessions.storage.ids import validate_session_id
from prefect_claude_sessions.storage.short_ids import resolve_id
from prefect_claude_sessions.tasks import retention
from prefect_claude_sessions.tasks.artifacts import render_lineage
from prefect_claude_sessions.tasks.budget import budget_statuses
from rich import box
from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text
from sqlmodel import Session

app = typer.Typer(
    name="claude-sessions",
    help="Durable Claude Agent SDK sessions on Prefect: inspect the store, export, purge, notify, "
    "demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class _Consoles:
    """Rich consoles made when first printed to, so they see the current streams and width
    (COLUMNS) of the process, including under a test runner."""

    @property
    def out(self) -> Console:
        return Console(highlight=False)

    @property
    def err(self) -> Console:
        return Console(stderr=True, highlight=False)


_consoles = _Consoles()

EXIT_BAD_INPUT = 2

F = TypeVar("F", bound=Callable[..., Any])


class StatusChoice(str, Enum):
    active = "active"
    archived = "archived"
    failed = "failed"
    purged = "purged"


DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        metavar="URL",
        help="SQLAlchemy URL of the store (overrides CLAUDE_SESSIONS_DATABASE_URL).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
SessionIdArg = Annotated[
    str,
    typer.Argument(
        metavar="ID",
        help="A session id, or a unique prefix of 8+ characters (as the dashboard shows it).",
    ),
]
#: Below this width `ls` shows 8-character ids (they work in every command) and leaves out the
#: parent and transcript columns, so turns and cost always fit.
WIDE = 120


class BadInput(Exception):
    """A user error the command reports in one line (exit code 2)."""


# --------------------------------------------------------------------------- error handling


def cli_errors(fn: F) -> F:
    """Turn store and input errors into one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (BadInput, StorageError, ValueError, LookupError) as exc:
            fail(str(exc))
        except sqlalchemy.exc.ArgumentError as exc:
            fail(f"invalid database URL: {exc}")
        except sqlalchemy.exc.SQLAlchemyError as exc:
            fail(f"database error: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        except OSError as exc:  # e.g. an unusable CLAUDE_SESSIONS_HOME
            fail(os_error_message(exc))

    return wrapper  # type: ignore[return-value]


def os_error_message(exc: OSError, doing: str | None = None) -> str:
    """One line for a file-system error: what was being done, the path, and why."""
    path = f" {exc.filename}" if exc.filename is not None else ""
    why = exc.strerror or str(exc)
    return f"cannot {doing}{path}: {why}" if doing else f"{why}:{path}".rstrip(":")


def fail(message: str) -> None:
    _consoles.err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def store_url(database: str | None) -> str:
    """The URL a command uses: ``--database`` or the configured default."""
    return database.strip() if database and database.strip() else database_url()


@contextmanager
def reading(database: str | None) -> Iterator[Session]:
    """A database session on the store of ``--database`` (or the default)."""
    with open_db(store_url(database)) as db:
        yield db


def session_id(value: str) -> str:
    """A canonical session id, or a one-line error naming what is wrong."""
    try:
        return validate_session_id(value.strip())
    except ValueError:
        raise BadInput(f"{value!r} is not a session id (expected a UUID)") from None


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


# --------------------------------------------------------------------------- store readers


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def session_row(record: SessionRecord) -> dict[str, Any]:
    """A session as plain data (the `ls` row and the head of `show`)."""
    return {
        "id": record.id,
        "agent": record.agent_name,
        "origin": record.origin.value,
        "parent_id": record.parent_id,
        "status": record.status.value,
        "turns": record.turn_count,
        "cost_usd": record.cost_usd,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "transcript_bytes": record.transcript_bytes,
        "project_key": record.project_key,
        "cwd": record.cwd,
        "fork_point": record.fork_point,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
    }


def list_session_rows(
    db: Session, *, agent: str | None, status: str | None, limit: int
) -> list[dict[str, Any]]:
    return [
        session_row(r)
        for r in sessions.list_sessions(db, agent_name=agent, status=status, limit=limit)
    ]


def session_details(db: Session, sid: str) -> dict[str, Any]:
    """Everything `show` reports: totals, lineage, turns, checkpoints and decisions."""
    record = sessions.get_session(db, sid)
    root = root_of(db, sid)
    return {
        "session": session_row(record),
        "lineage": {
            "root_id": root,
            "ancestors": [a.id for a in sessions.ancestors(db, sid)],
            "children": [
                {"id": c.id, "agent": c.agent_name, "origin": c.origin.value}
                for c in sessions.children(db, sid)
            ],
            "markdown": render_lineage(sessions.lineage_tree(db, root), {sid}),
        },
        "turns": [
            {
                "operation": t.operation,
                "status": t.status.value,
                "cost_usd": t.cost_usd,
                "duration_ms": t.duration_ms,
                "num_turns": t.num_turns,
                "answer": t.result_text,
                "error": t.error,
                "error_kind": t.error_kind,
                "attempts": t.attempts,
                "flow_run_id": t.flow_run_id,
                "started_at": iso(t.started_at),
            }
            for t in turns.list_turns(db, sid)
        ],
        "checkpoints": checkpoint_rows(db, sid),
        "decisions": decision_rows(db, session=sid),
        "budgets": budget_rows(db, sid),
    }


def budget_rows(db: Session, sid: str) -> list[dict[str, Any]]:
    """The budgets governing a session (its own and its ancestors'), nearest first."""
    return [
        {
            "owner_id": b.owner_id,
            "budget_usd": b.budget_usd,
            "spent_usd": b.spent_usd,
            "remaining_usd": b.remaining_usd,
        }
        for b in budget_statuses(db, sid)
    ]


def checkpoint_rows(db: Session, sid: str) -> list[dict[str, Any]]:
    sessions.get_session(db, sid)  # an unknown id is an error, not an empty list
    return [
        {
            "id": c.id,
            "label": c.label,
            "transcript_uuid": c.transcript_uuid,
            "user_message_uuid": c.user_message_uuid,
            "created_at": iso(c.created_at),
        }
        for c in checkpoints.list_checkpoints(db, sid)
    ]


def decision_rows(
    db: Session,
    *,
    session: str | None = None,
    key: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    if session is not None:
        sessions.get_session(db, session)
    return [
        {
            "id": d.id,
            "session_id": d.session_id,
            "key": d.key,
            "payload": d.payload,
            "flow_run_id": d.flow_run_id,
            "created_at": iso(d.created_at),
        }
        for d in decisions.list_decisions(
            db, session_id=session, key=key, since=since, until=until, limit=limit
        )
    ]


def purge_candidates(
    db: Session, *, older_than_days: float | None, sid: str | None, descendants: bool = False
) -> list[SessionRecord]:
    """Sessions whose transcripts a purge would delete: one by id, or all not yet purged and
    idle (not updated) for more than ``older_than_days`` days; with ``descendants``, each of
    them together with its forks, handoffs, rewinds and compactions (and theirs)."""
    if sid is not None:
        return retention.purge_plan(db, sid, include_descendants=descendants)
    assert older_than_days is not None
    cutoff = datetime.now(timezone.utc) - timedelta(days=older_than_days)
    idle = sessions.list_sessions(db, updated_before=cutoff, limit=None)
    chosen = [r for r in idle if r.status != SessionStatus.purged]
    if not descendants:
        return chosen
    seen: dict[str, SessionRecord] = {}
    for record in chosen:
        for member in retention.purge_plan(db, record.id, include_descendants=True):
            seen.setdefault(member.id, member)
    return list(seen.values())


def purge_session(url: str, sid: str) -> int:
    """Purge one session (see `tasks.retention.purge_session`); returns the bytes freed.

    A session that a worker is writing right now (claimed) is refused.
    """
    try:
        return retention.purge_session(SQLModelSessionStore(url), sid)
    except SessionBusy as exc:
        holder = f" by {exc.holder}" if exc.holder else ""
        raise BadInput(f"session {sid} is in use{holder}; try again later") from None


def human_bytes(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def short_time(value: str | None, *, seconds: bool = True) -> str:
    """A stored time in the local zone."""
    if not value:
        return ""
    local = datetime.fromisoformat(value).astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%m-%d %H:%M")


def as_utc(value: datetime | None) -> datetime | None:
    """Command-line times without a zone are UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


# --------------------------------------------------------------------------- rich rendering


def sessions_table(
    rows: list[dict[str, Any]], title: str = "Sessions", width: int | None = None
) -> Table:
    """The `ls` table; at less than `WIDE` columns short ids and only the columns that matter,
    each on one line (turns and cost never wrap or drop out)."""
    wide = width is None or width >= WIDE
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", style="cyan", no_wrap=True, min_width=36 if wide else 8)
    table.add_column("agent", no_wrap=True, overflow="ellipsis", min_width=5, max_width=22)
    table.add_column("origin", no_wrap=True, min_width=6)
    if wide:
        table.add_column("parent", style="dim", no_wrap=True, min_width=8)
    table.add_column("status", no_wrap=True, min_width=6)
    table.add_column("turns", justify="right", no_wrap=True, min_width=5)
    table.add_column("cost", justify="right", no_wrap=True, min_width=7)
    if wide:
        table.add_column("transcript", justify="right", no_wrap=True, min_width=8)
    table.add_column("updated", no_wrap=True, min_width=11)
    for r in rows:
        cells = [r["id"] if wide else r["id"][:8], r["agent"], r["origin"]]
        if wide:
            cells.append((r["parent_id"] or "")[:8])
        cells += [r["status"], str(r["turns"]), f"${r['cost_usd']:.4f}"]
        if wide:
            cells.append(human_bytes(r["transcript_bytes"]))
        cells.append(short_time(r["updated_at"], seconds=False))
        table.add_row(*cells)
    return table


def decisions_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"Decisions ({len(rows)})", title_justify="left")
    table.add_column("time", no_wrap=True)
    table.add_column("session", style="cyan", no_wrap=True)
    table.add_column("key", style="magenta")
    table.add_column("payload")
    for d in rows:
        payload = json.dumps(d["payload"], ensure_ascii=False)
        table.add_row(
            short_time(d["created_at"]),
            d["session_id"][:8],
            d["key"],
            Text(payload if len(payload) <= 160 else payload[:157] + "..."),
        )
    return table


def checkpoints_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"Checkpoints ({len(rows)})", title_justify="left")
    table.add_column("id", style="cyan", no_wrap=True)
    table.add_column("label", style="magenta")
    table.add_column("transcript point", style="dim")
    table.add_column("created", no_wrap=True)
    for c in rows:
        table.add_row(c["id"], Text(c["label"]), c["transcript_uuid"], short_time(c["created_at"]))
    return table


# --------------------------------------------------------------------------- commands


@app.command("ls")
@cli_errors
def ls_command(
    agent: Annotated[str | None, typer.Option(help="Only sessions of this agent profile.")] = None,
    status: Annotated[
        StatusChoice | None, typer.Option(help="Only sessions in this status.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many (newest first).")] = 50,
    database: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List sessions, newest first."""
    with reading(database) as db:
        rows = list_session_rows(
            db, agent=agent, status=status.value if status else None, limit=limit
        )
    if as_json:
        emit_json(rows)
    elif not rows:
        _consoles.out.print("No sessions.")
    else:
        out = _consoles.out
        out.print(sessions_table(rows, title=f"Sessions ({len(rows)})", width=out.width))


@app.command("show")
@cli_errors
def show_command(sid: SessionIdArg, database: DatabaseOpt = None, as_json: JsonOpt = False) -> None:
    """A session: totals, lineage, turns, checkpoints and decisions."""
    with reading(database) as db:
        info = session_details(db, resolve_id(db, "session", sid))
    if as_json:
        emit_json(info)
        return
    head = info["session"]
    _consoles.out.print(
        Panel(
            f"agent [magenta]{head['agent']}[/], origin {head['origin']}, status {head['status']}\n"
            f"{head['turns']} turns, ${head['cost_usd']:.4f}, "
            f"{head['input_tokens']} input / {head['output_tokens']} output tokens, "
            f"transcript {human_bytes(head['transcript_bytes'])}\n"
            f"parent {head['parent_id'] or '-'}, created {short_time(head['created_at'])}, "
            f"updated {short_time(head['updated_at'])}",
            title=f"Session {head['id']}",
            title_align="left",
        )
    )
    for b in info["budgets"]:
        owner = "this session" if b["owner_id"] == head["id"] else f"session {b['owner_id']}"
        _consoles.out.print(
            f"Budget ${b['budget_usd']:.4f} (set on {owner}, with its descendants): "
            f"spent ${b['spent_usd']:.4f}, left ${b['remaining_usd']:.4f}"
        )
    _consoles.out.print(Markdown("**Lineage**\n\n" + info["lineage"]["markdown"]))
    table = Table(title=f"Turns ({len(info['turns'])})", title_justify="left")
    for name in ("#", "operation", "status", "attempts", "error kind", "cost", "duration"):
        right = name in ("#", "attempts", "cost", "duration")
        table.add_column(name, justify="right" if right else "left", no_wrap=True)
    table.add_column("answer", overflow="fold")
    for i, t in enumerate(info["turns"], start=1):
        failed = t["status"] == "failed"
        answer = ((t["error"] if failed else t["answer"]) or "").replace("\n", " ")
        answer = answer if len(answer) <= 100 else answer[:97] + "..."
        table.add_row(
            str(i),
            t["operation"],
            t["status"],
            str(t["attempts"]) if failed else "",  # the audit of failed turns
            (t["error_kind"] or "-") if failed else "",
            f"${(t['cost_usd'] or 0):.4f}",
            f"{t['duration_ms'] or 0} ms",
            Text(answer, style="red" if failed else ""),
        )
    _consoles.out.print(table)
    _consoles.out.print(checkpoints_table(info["checkpoints"]))
    _consoles.out.print(decisions_table(info["decisions"]))


@app.command("tree")
@cli_errors
def tree_command(sid: SessionIdArg, database: DatabaseOpt = None, as_json: JsonOpt = False) -> None:
    """The lineage of a session (forks, handoffs, ...) from its root."""
    with reading(database) as db:
        target = resolve_id(db, "session", sid)
        root = lineage(db, target)
    if as_json:
        emit_json(root)
    else:
        _consoles.out.print(lineage_tree_view(root, {target}))


@app.command("decisions")
@cli_errors
def decisions_command(
    session: Annotated[str | None, typer.Option(metavar="ID", help="Only this session.")] = None,
    key: Annotated[str | None, typer.Option(help="Only decisions with this key.")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="From this time on (UTC unless a zone is given).")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="Before this time.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 1000,
    database: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The decisions log, oldest first."""
    sid = session_id(session) if session is not None else None
    with reading(database) as db:
        rows = decision_rows(
            db, session=sid, key=key, since=as_utc(since), until=as_utc(until), limit=limit
        )
    if as_json:
        emit_json(rows)
    else:
        _consoles.out.print(decisions_table(rows))


@app.command("checkpoints")
@cli_errors
def checkpoints_command(
    sid: SessionIdArg, database: DatabaseOpt = None, as_json: JsonOpt = False
) -> None:
    """A session's checkpoints (points to fork from or rewind to)."""
    with reading(database) as db:
        rows = checkpoint_rows(db, session_id(sid))
    if as_json:
        emit_json(rows)
    else:
        _consoles.out.print(checkpoints_table(rows))


@app.command("export")
@cli_errors
def export_command(
    sid: SessionIdArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    database: DatabaseOpt = None,
) -> None:
    """The stored transcript of a session as JSON lines (the CLI's own format)."""
    target = session_id(sid)
    url = store_url(database)
    with open_db(url) as db:
        record = sessions.get_session(db, target)
    if record.status == SessionStatus.purged:
        raise BadInput(f"session {target} was purged: its transcript is gone")
    entries = SQLModelSessionStore(url).entries(target)
    lines = (json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in entries)
    if output is None:
        for line in lines:
            typer.echo(line, nl=False)
        return
    try:
        with output.open("w", encoding="utf-8") as fh:
            fh.writelines(lines)
    except OSError as exc:
        exc.filename = str(output)  # the path as the user typed it
        raise BadInput(os_error_message(exc, "write the export to")) from None
    _consoles.err.print(
        f"wrote {len(entries)} entries of session {target} to {output}", highlight=False
    )


@app.command("purge")
@cli_errors
def purge_command(
    sid: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="Purge this session only.")
    ] = None,
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than", metavar="DAYS", min=0, help="Purge sessions idle for more than DAYS."
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Only show what would be purged.")] = False,
    descendants: Annotated[
        bool,
        typer.Option(
            "--descendants",
            help="Also purge the sessions descended from each one (forks, handoffs, rewinds, "
            "compactions): they hold copies of its conversation.",
        ),
    ] = False,
    database: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retention: delete stored transcripts and mark their sessions purged.

    The sessions to delete (ids and agents) are listed before the confirmation; ``--yes`` skips
    the question. Lineage, turns, checkpoints, decisions and costs are kept as the audit trail;
    a purged session can no longer be resumed, forked, handed off, rewound or exported.
    """
    if (sid is None) == (older_than is None):
        raise BadInput("give either a session ID or --older-than DAYS (not both)")
    target = session_id(sid) if sid is not None else None
    url = store_url(database)
    with open_db(url) as db:
        candidates = purge_candidates(
            db, older_than_days=older_than, sid=target, descendants=descendants
        )
        total = sum(r.transcript_bytes for r in candidates)
        plan = [session_row(r) for r in candidates]
    if as_json and not (yes or dry_run):
        raise BadInput("--json needs --yes (or --dry-run): there is no prompt in JSON mode")
    if not as_json:
        if not plan:
            _consoles.out.print("Nothing to purge.")
            return
        _consoles.out.print(
            sessions_table(plan, title=f"To purge: {len(plan)} sessions, {human_bytes(total)}")
        )
    if dry_run:
        if as_json:
            emit_json({"dry_run": True, "sessions": [p["id"] for p in plan], "bytes": total})
        return
    if plan and not yes:
        typer.confirm(
            f"Delete the transcripts of {len(plan)} sessions ({human_bytes(total)})?",
            abort=True,
            err=True,
        )
    purged: list[str] = []
    skipped: list[dict[str, str]] = []
    freed = 0
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=_consoles.err,
        transient=True,
        disable=as_json or len(plan) < 2,
    ) as progress:
        job = progress.add_task("purging", total=len(plan))
        for row in plan:
            try:
                freed += purge_session(url, row["id"])
                purged.append(row["id"])
            except BadInput as exc:
                skipped.append({"id": row["id"], "reason": str(exc)})
            progress.advance(job)
    if as_json:
        emit_json({"purged": purged, "skipped": skipped, "bytes_freed": freed})
        return
    _consoles.out.print(f"Purged {len(purged)} sessions, freed {human_bytes(freed)}.")
    for s in skipped:
        _consoles.err.print(f"[yellow]skipped[/] {s['id']}: {s['reason']}", highlight=False)


@app.command("rotate-key")
@cli_errors
def rotate_key_command(
    database: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-encrypt every sealed value with the newest key of CLAUDE_SESSIONS_ENCRYPTION_KEY.

    Put the new key first in the list and keep the old ones after it until this has run; then
    the old keys can be removed (see docs/SECURITY.md).
    """
    from prefect_claude_sessions.storage.rotation import reencrypt_all

    url = store_url(database)
    done: dict[str, int] = {}

    def progress(column: str, rows: int) -> None:
        done[column] = rows
        if not as_json:
            _consoles.err.print(f"{column}: {rows} rows checked", highlight=False)

    report = reencrypt_all(url, progress=progress)
    if as_json:
        emit_json(
            {
                "resealed": report.resealed,
                "sealed": report.sealed,
                "current": report.current,
                "changed": report.changed,
            }
        )
        return
    _consoles.out.print(
        f"re-encrypted {sum(report.resealed.values())} values from older keys, sealed "
        f"{sum(report.sealed.values())} values that were in clear, "
        f"{sum(report.current.values())} already current",
        highlight=False,
    )


@app.command("notify")
@cli_errors
def notify_command(
    webhook_url: Annotated[
        str | None,
        typer.Option(
            "--webhook-url",
            metavar="URL",
            help='POST each notification as {"text": ...} to this URL (a Slack or Teams '
            "incoming webhook, or your own); saved as a secret in a Prefect webhook block.",
            show_default=False,
        ),
    ] = None,
    block: Annotated[
        str | None,
        typer.Option(
            "--block",
            metavar="TYPE/NAME",
            help="Notify through this saved Prefect notification block instead "
            "(see `prefect block ls`), e.g. slack-webhook/oncall or email/team.",
            show_default=False,
        ),
    ] = None,
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            metavar="EVENT",
            help="What to notify on (repeat for several): human.requested (the default: a "
            "session waits for a person), budget.warning (80 % spent), budget.exceeded, "
            "turn.failed.",
            show_default=False,
        ),
    ] = None,
    allow_private_url: Annotated[
        bool,
        typer.Option(
            "--allow-private-url",
            help="Let the webhook be on a private network (Prefect refuses such URLs unless told).",
        ),
    ] = False,
    label: Annotated[
        str | None,
        typer.Option(
            metavar="LABEL",
            help="Keep this set of automations apart from others (one per team or channel): "
            "added to their names.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Notify someone when an unattended session needs a person: it waits for an answer
    (ask_human, review_pending_tool), its budget runs low or out, or a turn fails.

    Creates, or updates in place, one Prefect automation per event (claude-sessions.<EVENT>):
    the notification says what happened, with a link to the flow run. Talks to the server of
    PREFECT_API_URL.
    """
    import asyncio

    import httpx
    from prefect.settings import get_current_settings
    from prefect_claude_sessions.flows.notifications import DEFAULT_EVENTS, notify_on

    api_url = get_current_settings().api.url
    if not api_url:
        raise BadInput(
            "PREFECT_API_URL is not set: point it at the Prefect server your deployments run on "
            "(an automation on a temporary server would never fire)"
        )
    try:
        made = asyncio.run(
            notify_on(
                events or list(DEFAULT_EVENTS),
                block=block,
                webhook_url=webhook_url,
                allow_private_url=allow_private_url,
                label=label,
            )
        )
    except httpx.HTTPError as exc:
        raise BadInput(
            f"cannot set up the automation on the Prefect API at {masked_url(api_url)}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no answer'}"
        ) from None
    if as_json:
        emit_json(
            [
                {
                    "automation_id": m.automation_id,
                    "name": m.name,
                    "event": m.event,
                    "block": m.block,
                    "created": m.created,
                }
                for m in made
            ]
        )
        return
    for m in made:
        _consoles.out.print(
            f"{'Created' if m.created else 'Updated'} automation {m.name!r} ({m.automation_id}): "
            f"each {m.event} event notifies through block {m.block}.",
            soft_wrap=True,
        )


@app.command("demo")
def demo_command(
    database: DatabaseOpt = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port of the demo's Prefect server (default: 4200 if free, else any)."),
    ] = None,
    keep_open: Annotated[
        bool, typer.Option(help="Keep the dashboard running after the demo until Ctrl-C.")
    ] = False,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's own run logs.")] = False,
) -> None:
    """Run the whole product locally: triage a sample inbox (with handoffs to specialists),
    explore three approaches in parallel forks, and show the result and the dashboard."""
    from prefect_claude_sessions.flows.demo import DemoError, DemoSettings, run_demo

    settings = DemoSettings(database_url=database, port=port, keep_open=keep_open, verbose=verbose)
    # `kill` (SIGTERM, as a supervisor or a closed session sends) stops the demo like Ctrl-C:
    # everything it started is stopped on the way out
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_demo(settings, _consoles.out)
    except DemoError as exc:
        fail(str(exc))
    except StorageError as exc:
        fail(str(exc))
    except OSError as exc:  # e.g. an unusable CLAUDE_SESSIONS_HOME
        fail(os_error_message(exc))
    except KeyboardInterrupt:
        _consoles.err.print("interrupted; everything the demo started is stopped")
        raise typer.Exit(130) from None


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:  # pragma: no cover - the console script calls `app` directly
    app()


__all__ = ["app", "masked_url"]
