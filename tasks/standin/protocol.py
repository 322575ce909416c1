"""Reading Messages-API requests the way the Claude Code CLI sends them, and writing replies.

Facts about the CLI's requests (Claude Code 2.1.332, seen on the wire):

- ``system`` is a list of text blocks: a billing header (``x-anthropic-billing-header: ...``),
  the SDK preamble ("You are a Claude agent, built on Anthropic's Claude Agent SDK."), then the
  agent's own system prompt.
- ``messages`` mixes ``user``, ``assistant`` and ``system`` roles. User messages carry
  ``<system-reminder>`` blocks besides the real prompt; the working directory is announced in a
  ``system`` message ("Primary working directory: /path").
- The main conversation call always lists tools. Auxiliary calls (session title generation,
  sent unless ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1``) send no tools and ask for
  structured output (``output_config.format``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

BILLING_PREFIX = "x-anthropic-billing-header"
SDK_PREAMBLE_PREFIX = "You are a Claude agent, built on Anthropic's Claude Agent SDK"
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)
_CWD = re.compile(r"Primary working directory:\s*(\S+)")

# Anthropic error types by HTTP status (https://docs.anthropic.com/en/api/errors).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
ERROR_MESSAGES = {
    "invalid_request_error": "Invalid request (injected by the stand-in model)",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
    "timeout_error": "Request timed out",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
}


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """The JSON body the Messages API sends with an HTTP error."""
    etype = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {
        "type": "error",
        "error": {"type": etype, "message": message or ERROR_MESSAGES[etype]},
    }


def _block_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    out = []
    for block in content or []:
        if isinstance(block, dict) and block.get("type") == "text":
            out.append(str(block.get("text", "")))
    return out


def _clean(text: str) -> str:
    return _REMINDER.sub("", text).strip()


@dataclass
class ParsedRequest:
    """What a brain needs to know about one ``POST /v1/messages`` body."""

    body: dict[str, Any]
    model: str
    stream: bool
    system_text: str  # the agent's own system prompt (billing header and SDK preamble removed)
    user_turns: list[
        str
    ]  # the real user prompts, oldest first (reminders and tool results removed)
    tool_names: list[str]
    cwd: str | None
    kind: str  # "main", "title" or "auxiliary"
    # Tool round trip since the last real user prompt: assistant tool_use blocks and results.
    tool_uses_since_prompt: list[dict[str, Any]] = field(default_factory=list)
    tool_results_since_prompt: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last_user_text(self) -> str:
        return self.user_turns[-1] if self.user_turns else ""

    @property
    def first_line_of_system(self) -> str:
        for line in self.system_text.splitlines():
            if line.strip():
                return line.strip()
        return ""


def system_text_of(body: dict[str, Any]) -> str:
    system = body.get("system")
    texts = _block_texts(system) if system is not None else []
    kept = [
        t
        for t in texts
        if not t.startswith(BILLING_PREFIX) and not t.startswith(SDK_PREAMBLE_PREFIX)
    ]
    return "\n".join(kept).strip()


def classify_call(body: dict[str, Any], system_text: str) -> str:
    """Tell the main conversation call apart from the CLI's auxiliary calls."""
    fmt = (body.get("output_config") or {}).get("format") or {}
    props = ((fmt.get("schema") or {}).get("properties") or {}) if isinstance(fmt, dict) else {}
    if "title" in props or system_text.startswith("You are naming a coding session"):
        return "title"
    if body.get("tools"):
        return "main"
    if fmt:
        return "auxiliary"
    return "main"


def parse_request(body: dict[str, Any]) -> ParsedRequest:
    system_text = system_text_of(body)
    user_turns: list[str] = []
    cwd = None
    tool_uses: list[dict[str, Any]] = []
    tool_results: list[dict[str, Any]] = []
    for message in body.get("messages") or []:
        role = message.get("role")
        content = message.get("content")
        if cwd is None:
            for text in _block_texts(content):
                m = _CWD.search(text)
                if m:
                    cwd = m.group(1)
        if role == "user":
            text = "\n".join(t for t in (_clean(x) for x in _block_texts(content)) if t)
            if isinstance(content, list):
                for block in content:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        tool_results.append(block)
            if text:
                user_turns.append(text)
                tool_uses, tool_results = [], []
        elif role == "assistant" and isinstance(content, list):
            tool_uses.extend(
                b for b in content if isinstance(b, dict) and b.get("type") == "tool_use"
            )
    if cwd is None:
        m = _CWD.search(system_text)
        cwd = m.group(1) if m else None
    return ParsedRequest(
        body=body,
        model=str(body.get("model") or "standin"),
        stream=bool(body.get("stream")),
        system_text=system_text,
        user_turns=user_turns,
        tool_names=[t.get("name", "") for t in body.get("tools") or [] if isinstance(t, dict)],
        cwd=cwd,
        kind=classify_call(body, system_text),
        tool_uses_since_prompt=tool_uses,
        tool_results_since_prompt=tool_results,
    )


# --- replies -----------------------------------------------------------------------------


@dataclass
class Reply:
    """A brain's answer: text and/or tool calls, and why the turn stops."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"id", "name", "input"}

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.tool_calls else "end_turn"


def estimate_tokens(obj: Any) -> int:
    return max(1, len(json.dumps(obj, default=str)) // 4)


def _content_blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    for call in reply.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call["id"], "name": call["name"], "input": call["input"]}
        )
    return blocks


def message_json(reply: Reply, *, model: str, message_id: str, input_tokens: int) -> dict:
    """A complete (non-streaming) Messages-API response body."""
    blocks = _content_blocks(reply)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": estimate_tokens(blocks)},
    }


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _halves(s: str) -> list[str]:
    if len(s) < 2:
        return [s]
    mid = len(s) // 2
    return [s[:mid], s[mid:]]


def sse_events(reply: Reply, *, model: str, message_id: str, input_tokens: int) -> list[bytes]:
    """The SSE frames of a streamed reply, ``message_start`` ... ``message_stop``."""
    frames = [
        _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": 1},
                },
            },
        )
    ]
    index = 0
    if reply.text:
        frames.append(
            _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        for part in _halves(reply.text):
            frames.append(
                _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": part},
                    },
                )
            )
        frames.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    for call in reply.tool_calls:
        frames.append(
            _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": call["id"],
                        "name": call["name"],
                        "input": {},
                    },
                },
            )
        )
        for part in _halves(json.dumps(call["input"])):
            frames.append(
                _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": part},
                    },
                )
            )
        frames.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    frames.append(
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": estimate_tokens(_content_blocks(reply))},
            },
        )
    )
    frames.append(_sse("message_stop", {"type": "message_stop"}))
    return frames
