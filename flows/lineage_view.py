"""The lineage of a session (forks, handoffs, compactions, ...) as data and as a rich Tree.

Shared by the ``claude-sessions tree`` command and the demo's summary; it lives apart from
both so neither has to import the other.
"""

from __future__ import annotations

from typing import Any

from prefect_claude_sessions.storage import sessions
from rich.tree import Tree
from sqlmodel import Session


def root_of(db: Session, sid: str) -> str:
    """The id of the session at the root of ``sid``'s lineage (``sid`` itself if it has no
    parent); an unknown id raises the store's not-found error."""
    chain = sessions.ancestors(db, sid)
    return chain[-1].id if chain else sessions.get_session(db, sid).id


def lineage(db: Session, sid: str) -> dict[str, Any]:
    """The lineage of a session from its root, as a nested dict (``children`` lists)."""
    root = root_of(db, sid)
    nodes: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for depth, record in sessions.lineage_tree(db, root):
        node: dict[str, Any] = {
            "id": record.id,
            "agent": record.agent_name,
            "origin": record.origin.value,
            "status": record.status.value,
            "turns": record.turn_count,
            "cost_usd": record.cost_usd,
            "children": [],
        }
        nodes[record.id] = node
        if depth == 0:
            top = node
        elif record.parent_id in nodes:
            nodes[record.parent_id]["children"].append(node)
    return top


def lineage_tree_view(
    node: dict[str, Any], highlight: set[str] | frozenset[str] = frozenset()
) -> Tree:
    """A rich Tree of a `lineage` dict; sessions in ``highlight`` are in bold."""

    def label(n: dict[str, Any]) -> str:
        sid = f"[bold cyan]{n['id']}[/]" if n["id"] in highlight else f"[cyan]{n['id']}[/]"
        status = "" if n["status"] == "active" else f" [yellow]{n['status']}[/]"
        return (
            f"{sid} [magenta]{n['agent']}[/] ({n['origin']}){status}: "
            f"{n['turns']} turns, ${n['cost_usd']:.4f}"
        )

    tree = Tree(label(node), guide_style="dim")

    def add(branch: Tree, children: list[dict[str, Any]]) -> None:
        for child in children:
            add(branch.add(label(child)), child["children"])

    add(tree, node["children"])
    return tree
