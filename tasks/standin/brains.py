"""Deterministic answers of the stand-in model.

Which brain answers a main conversation call, first match wins:

1. scripted tool use: the last user prompt is a tool command
   (``write file notes.txt with content: hello``, ``edit file notes.txt replace: a with: b``,
   ``read file notes.txt``, ``run command: touch done.txt``); the brain emits ``tool_use`` blocks one step at a time and a final
   text once the tool results are back;
   A deferred tool call that the CLI continues on resume arrives as a tool result beside its
   synthetic "Continue from where you left off."; the brain then reports what the tool
   returned (``After the tool: ...``) or that it did not run (``The tool did not run: ...``);
2. triage: the system prompt mentions "triage"; the answer is a JSON object with ``category``,
   ``priority``, ``summary``, ``reply`` (and ``earlier_emails``) from keyword rules;
3. specialist: the system prompt mentions "specialist"; the answer starts with the first line of
   the system prompt in brackets, so a test can see a handoff took effect;
4. echo: ``echo: <last prompt> | earlier user turns: N | first: <first prompt>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

from prefect_claude_sessions.tasks.standin.protocol import ParsedRequest, Reply

# --- triage --------------------------------------------------------------------------------

CATEGORY_KEYWORDS: dict[str, tuple[str, ...]] = {
    "technical": (
        "down",
        "outage",
        "error",
        "crash",
        "bug",
        "broken",
        "not working",
        "fails",
        "failing",
        "failed",
        "timeout",
        "slow",
        "500",
        "exception",
        "database",
        "api",
    ),
    "billing": (
        "invoice",
        "refund",
        "charge",
        "charged",
        "billing",
        "payment",
        "credit card",
        "overcharged",
        "receipt",
        "vat",
    ),
    "account": (
        "password",
        "login",
        "log in",
        "sign in",
        "locked",
        "2fa",
        "two-factor",
        "username",
        "account",
        "delete my",
    ),
    "sales": (
        "pricing",
        "quote",
        "demo",
        "enterprise",
        "upgrade",
        "purchase",
        "buy",
        "trial",
        "licence",
        "license",
        "seats",
    ),
}
CATEGORY_ORDER = ("technical", "billing", "account", "sales")
URGENT_WORDS = (
    "urgent",
    "asap",
    "outage",
    "down",
    "critical",
    "production",
    "all users",
    "data loss",
    "immediately",
    "emergency",
)
REPLIES = {
    "technical": "Thanks for reporting this. Our engineers are investigating and will update you "
    "within the hour.",
    "billing": "Thanks for reaching out about billing. We are reviewing your account and will "
    "correct any wrong charge within 2 business days.",
    "account": "We can help with your account. Please use the reset link we just sent; reply "
    "here if it does not arrive.",
    "sales": "Thanks for your interest! A member of our sales team will contact you today with "
    "pricing details.",
    "general": "Thanks for your message. We have received it and will get back to you soon.",
}


def _hits(text: str, words: tuple[str, ...]) -> int:
    return sum(1 for w in words if re.search(rf"(?<![a-z0-9]){re.escape(w)}(?![a-z0-9])", text))


def triage(email: str) -> dict[str, Any]:
    """Rule-based triage of a support e-mail (deterministic)."""
    low = email.lower()
    scores = {c: _hits(low, CATEGORY_KEYWORDS[c]) for c in CATEGORY_ORDER}
    best = max(CATEGORY_ORDER, key=lambda c: (scores[c], -CATEGORY_ORDER.index(c)))
    category = best if scores[best] > 0 else "general"
    urgent = _hits(low, URGENT_WORDS) > 0
    if category == "technical":
        priority = "P1" if urgent else "P2"
    elif category in ("billing", "account"):
        priority = "P2" if urgent else "P3"
    else:
        priority = "P3" if urgent else "P4"
    first_sentence = re.split(r"(?<=[.!?])\s|\n", email.strip(), maxsplit=1)[0].strip()
    summary = first_sentence if len(first_sentence) <= 120 else first_sentence[:117] + "..."
    return {
        "category": category,
        "priority": priority,
        "summary": summary,
        "reply": REPLIES[category],
    }


# --- scripted tool use ---------------------------------------------------------------------

_WRITE = re.compile(r"write file (?P<path>\S+) with content:\s?(?P<content>.*)", re.I | re.S)
_EDIT = re.compile(
    r"edit file (?P<path>\S+) replace:\s?(?P<old>.*?) with:\s?(?P<new>.*)", re.I | re.S
)
_READ = re.compile(r"read file (?P<path>\S+)", re.I)
_RUN = re.compile(r"run command:\s?(?P<command>.+)", re.I | re.S)


def _abs(path: str, cwd: str | None) -> str:
    if os.path.isabs(path) or not cwd:
        return path
    return os.path.join(cwd, path)


def tool_script(req: ParsedRequest) -> list[tuple[str, dict[str, Any]]] | None:
    """The tool calls a tool-command prompt asks for, in order; None if it is no command."""
    text = req.last_user_text
    m = _RUN.search(text)
    if m:
        return [("Bash", {"command": m["command"].strip(), "description": "Run a command"})]
    m = _WRITE.search(text)
    if m:
        path = _abs(m["path"], req.cwd)
        return [("Write", {"file_path": path, "content": m["content"]})]
    m = _EDIT.search(text)
    if m:
        path = _abs(m["path"], req.cwd)
        return [
            ("Read", {"file_path": path}),
            ("Edit", {"file_path": path, "old_string": m["old"], "new_string": m["new"]}),
        ]
    m = _READ.search(text)
    if m:
        return [("Read", {"file_path": _abs(m["path"], req.cwd)})]
    return None


def _tool_id(req: ParsedRequest, step: int) -> str:
    seed = f"{len(req.user_turns)}|{req.last_user_text}|{step}"
    return "toolu_standin_" + hashlib.sha256(seed.encode()).hexdigest()[:20]


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return str(content or "")


def scripted_reply(req: ParsedRequest, script: list[tuple[str, dict[str, Any]]]) -> Reply:
    results = req.tool_results_since_prompt
    if results and results[-1].get("is_error"):
        return Reply(text=f"Tool error: {_result_text(results[-1])[:500]}")
    step = len(req.tool_uses_since_prompt)
    if step < len(script):
        name, tool_input = script[step]
        return Reply(tool_calls=[{"id": _tool_id(req, step), "name": name, "input": tool_input}])
    name, tool_input = script[-1]
    if name == "Bash":
        return Reply(text=f"Ran: {_result_text(results[-1]).strip()[:200] if results else ''}")
    path = tool_input["file_path"]
    if name == "Write":
        return Reply(text=f"Wrote {path}.")
    if name == "Edit":
        return Reply(text=f"Edited {path}.")
    first = _result_text(results[-1]).strip().splitlines() if results else []
    first = [re.sub(r"^\s*\d+\t", "", line) for line in first]
    return Reply(text=f"Read {path}: {first[0] if first else ''}")


#: What the CLI sends, beside the tool result, when it continues a deferred tool call.
CONTINUE_PROMPT = "Continue from where you left off."


def continued_tool_reply(req: ParsedRequest) -> Reply | None:
    """The answer to a continued deferred tool call; None if this request is none."""
    messages = req.body.get("messages") or []
    if not messages or req.last_user_text != CONTINUE_PROMPT:
        return None
    content = messages[-1].get("content")
    results = [b for b in content or [] if isinstance(b, dict) and b.get("type") == "tool_result"]
    if messages[-1].get("role") != "user" or not results:
        return None
    text = _result_text(results[-1]).strip()[:500]
    if results[-1].get("is_error"):
        return Reply(text=f"The tool did not run: {text}")
    return Reply(text=f"After the tool: {text}")


# --- brains ----------------------------------------------------------------------------------


def echo_text(req: ParsedRequest) -> str:
    earlier = max(0, len(req.user_turns) - 1)
    first = req.user_turns[0] if req.user_turns else ""
    return f"echo: {req.last_user_text} | earlier user turns: {earlier} | first: {first}"


def answer(req: ParsedRequest) -> tuple[str, Reply]:
    """(brain name, reply) for a parsed request."""
    if req.kind == "title":
        m = re.search(r"<session>(.*?)(?:</session>|$)", req.last_user_text, re.S)
        words = (m.group(1) if m else req.last_user_text).split()[:4]
        return "title", Reply(text=json.dumps({"title": " ".join(words) or "Stand-in session"}))
    if req.kind == "auxiliary":
        return "auxiliary", Reply(text="{}")
    continued = continued_tool_reply(req)
    if continued is not None:
        return "tool", continued
    script = tool_script(req)
    if script is not None:
        return "tool", scripted_reply(req, script)
    system = req.system_text.lower()
    if "triage" in system:
        result = triage(req.last_user_text)
        result["earlier_emails"] = max(0, len(req.user_turns) - 1)
        return "triage", Reply(text=json.dumps(result))
    if "specialist" in system:
        earlier = max(0, len(req.user_turns) - 1)
        return "specialist", Reply(
            text=f"[{req.first_line_of_system}] handling: {req.last_user_text} "
            f"| earlier user turns: {earlier}"
        )
    return "echo", Reply(text=echo_text(req))
