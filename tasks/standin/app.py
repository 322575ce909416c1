"""The stand-in model as a Starlette app: the Messages API plus a small control API.

Model routes (what the Claude Code CLI calls):

- ``POST /v1/messages`` (the CLI adds ``?beta=true``): streaming (SSE) and non-streaming;
- ``POST /v1/messages/count_tokens``: a token estimate;
- ``HEAD|GET /api/hello``: the CLI's connectivity probe (sent when non-essential traffic is on);
- anything else: logged as ``kind="unknown"`` and answered 404 with an Anthropic error body.

Control routes (tests, demo, other processes):

- ``GET /_standin/health``
- ``GET|POST|DELETE /_standin/faults``: list, add (a fault object or a list of them), clear;
- ``GET|DELETE /_standin/requests``: the request log (``?kind=main``), clear it.
"""

from __future__ import annotations

import asyncio
import builtins
import itertools
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from prefect_claude_sessions.tasks.standin.brains import answer
from prefect_claude_sessions.tasks.standin.faults import FaultBook, fault_from_dict
from prefect_claude_sessions.tasks.standin.protocol import (
    Reply,
    error_body,
    estimate_tokens,
    message_json,
    parse_request,
    sse_events,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

logger = logging.getLogger(__name__)

# Headers worth keeping in the log. Never x-api-key / authorization.
LOGGED_HEADERS = ("x-claude-code-session-id", "user-agent", "x-stainless-retry-count", "x-app")


class _CutStream(Exception):
    """Raised inside a streaming body to drop the connection on purpose."""


_EXC_GROUP: Any = getattr(builtins, "BaseExceptionGroup", ())


class _QuietCuts(logging.Filter):
    """Keep the server's error log free of the tracebacks that deliberate stream cuts cause."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, _CutStream) or (
            isinstance(exc, _EXC_GROUP) and any(isinstance(e, _CutStream) for e in exc.exceptions)
        ):
            return False
        return "without completing response" not in record.getMessage()


for _name in ("uvicorn.error", "uvicorn"):
    logging.getLogger(_name).addFilter(_QuietCuts())


class RequestLog:
    """The request log: kept in memory and, if a path is given, appended as JSON lines."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._seq = itertools.count(1)
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()

    def add(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            entry = {"seq": next(self._seq), **entry}
            self._entries.append(entry)
            if self.path:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry, default=str) + "\n")
        return entry

    def entries(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._entries)
        return [e for e in items if kind is None or e.get("kind") == kind]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            if self.path:
                self.path.write_text("", encoding="utf-8")


def _headers_of(request: Request) -> dict[str, str]:
    return {h: request.headers[h] for h in LOGGED_HEADERS if h in request.headers}


def _error_response(status: int, message: str | None, headers: dict[str, str]) -> JSONResponse:
    hdrs = {"request-id": f"req_standin_{int(time.time() * 1000)}", **headers}
    if status in (429, 529) and "retry-after" not in {k.lower() for k in hdrs}:
        hdrs["retry-after"] = "0"  # let the CLI retry at once; tests stay fast
    return JSONResponse(error_body(status, message), status_code=status, headers=hdrs)


def create_app(log: RequestLog | None = None, faults: FaultBook | None = None) -> Starlette:
    log = log if log is not None else RequestLog()
    faults = faults if faults is not None else FaultBook()
    ids = itertools.count(1)

    async def messages(request: Request) -> Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error_response(400, "request body is not JSON", {})
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error_response(400, "messages: field required", {})
        req = parse_request(body)
        fault = faults.take(req.kind)
        brain, reply = answer(req)
        if fault and fault.reply_text is not None:
            brain, reply = "fault", Reply(text=fault.reply_text)
        status = fault.status if fault and fault.status else 200
        entry = log.add(
            {
                "ts": time.time(),
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": _headers_of(request),
                "session_id": request.headers.get("x-claude-code-session-id"),
                "kind": req.kind,
                "model": req.model,
                "stream": req.stream,
                "system": req.system_text,
                "messages": body.get("messages"),
                "user_turns": req.user_turns,
                "tools": req.tool_names,
                "cwd": req.cwd,
                "brain": brain,
                "reply_text": reply.text,
                "tool_calls": reply.tool_calls,
                "status": status,
                "fault": fault.to_dict() if fault else None,
            }
        )
        if fault and fault.latency_s:
            await asyncio.sleep(fault.latency_s)
        if fault and fault.status:
            return _error_response(fault.status, fault.message, fault.headers)
        message_id = f"msg_standin_{entry['seq']:06d}_{next(ids)}"
        input_tokens = estimate_tokens(body.get("messages"))
        cut = bool(fault and fault.cut_stream)
        if req.stream:
            frames = sse_events(
                reply, model=req.model, message_id=message_id, input_tokens=input_tokens
            )

            async def stream() -> AsyncIterator[bytes]:
                for i, frame in enumerate(frames):
                    if cut and i >= 2:
                        raise _CutStream("stream cut by fault injection")
                    yield frame

            return StreamingResponse(
                stream(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
            )
        payload = json.dumps(
            message_json(reply, model=req.model, message_id=message_id, input_tokens=input_tokens)
        ).encode()
        if cut:

            async def truncated() -> AsyncIterator[bytes]:
                yield payload[: len(payload) // 2]
                raise _CutStream("response cut by fault injection")

            return StreamingResponse(truncated(), media_type="application/json")
        return Response(payload, media_type="application/json")

    async def count_tokens(request: Request) -> Response:
        body = await request.json()
        log.add(
            {"ts": time.time(), "method": "POST", "path": request.url.path, "kind": "count_tokens"}
        )
        return JSONResponse({"input_tokens": estimate_tokens(body.get("messages"))})

    async def hello(request: Request) -> Response:
        return JSONResponse({"ok": True, "standin": True})

    async def health(request: Request) -> Response:
        return JSONResponse(
            {"ok": True, "requests": len(log.entries()), "faults": len(faults.active())}
        )

    async def faults_route(request: Request) -> Response:
        if request.method == "DELETE":
            faults.clear()
            return JSONResponse({"cleared": True})
        if request.method == "POST":
            try:
                data = await request.json()
                items = data if isinstance(data, list) else [data]
                added = [faults.add(fault_from_dict(item)).to_dict() for item in items]
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=422)
            return JSONResponse({"added": added})
        return JSONResponse([f.to_dict() for f in faults.active()])

    async def requests_route(request: Request) -> Response:
        if request.method == "DELETE":
            log.clear()
            return JSONResponse({"cleared": True})
        return JSONResponse(log.entries(request.query_params.get("kind")))

    async def unknown(request: Request) -> Response:
        log.add(
            {
                "ts": time.time(),
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "kind": "unknown",
                "headers": _headers_of(request),
            }
        )
        logger.info("stand-in model: unknown route %s %s", request.method, request.url.path)
        return JSONResponse(error_body(404, f"no route {request.url.path}"), status_code=404)

    app = Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
            Route("/api/hello", hello, methods=["GET", "HEAD"]),
            Route("/_standin/health", health, methods=["GET"]),
            Route("/_standin/faults", faults_route, methods=["GET", "POST", "DELETE"]),
            Route("/_standin/requests", requests_route, methods=["GET", "DELETE"]),
            Route(
                "/{path:path}",
                unknown,
                methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            ),
        ]
    )
    app.state.log = log
    app.state.faults = faults
    return app
