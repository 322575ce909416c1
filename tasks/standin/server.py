"""Running the stand-in model: in a background thread (`StandinModel`) or reached over HTTP
from another process (`RemoteStandin`)."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from prefect_claude_sessions.tasks.standin.app import RequestLog, create_app
from prefect_claude_sessions.tasks.standin.faults import Fault, FaultBook

#: The dummy key the stand-in hands out; any value works, the stand-in never checks it.
STANDIN_API_KEY = "sk-standin-not-a-real-key"


def cli_env(base_url: str, api_key: str = STANDIN_API_KEY) -> dict[str, str]:
    """Environment for the Claude Code CLI to talk to a stand-in at ``base_url``."""
    return {
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


class StandinModel:
    """The local stand-in model, served by uvicorn in a background thread.

    >>> with StandinModel(log_path="requests.jsonl") as model:   # port 0 = a free port
    ...     options = ClaudeAgentOptions(env={**model.env(), "CLAUDE_CONFIG_DIR": tmp})
    ...     model.inject(status=529, count=2)
    ...     model.requests(kind="main")[-1]["system"]
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, log_path: str | Path | None = None
    ) -> None:
        self.host = host
        self._requested_port = port
        self.log = RequestLog(log_path)
        self.faults = FaultBook()
        self.app = create_app(self.log, self.faults)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # --- lifecycle -----------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> StandinModel:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="standin-model", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"stand-in model did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> StandinModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addressing ----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("stand-in model is not started; call start() first")
        return f"http://{self.host}:{self.port}"

    def env(self, api_key: str = STANDIN_API_KEY) -> dict[str, str]:
        return cli_env(self.base_url, api_key)

    # --- control -------------------------------------------------------------------------
    def inject(self, **fault: Any) -> Fault:
        """Add a fault, e.g. ``inject(status=529, count=2)``, ``inject(latency_s=1.0)``,
        ``inject(cut_stream=True)``. See `tasks.standin.faults.Fault`."""
        return self.faults.add(Fault(**fault))

    def clear_faults(self) -> None:
        self.faults.clear()

    def requests(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Logged requests, oldest first; ``kind`` is "main", "title", "auxiliary", "unknown"."""
        return self.log.entries(kind)

    def clear_requests(self) -> None:
        self.log.clear()

    @staticmethod
    def attach(base_url: str) -> RemoteStandin:
        """A handle on a stand-in running elsewhere (another process), same control methods."""
        return RemoteStandin(base_url)


class RemoteStandin:
    """Controls a stand-in model over its HTTP control API (``/_standin/...``)."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout_s

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        with httpx.Client(base_url=self.base_url, timeout=self._timeout) as http:
            resp = http.request(method, path, **kw)
            resp.raise_for_status()
            return resp.json()

    def env(self, api_key: str = STANDIN_API_KEY) -> dict[str, str]:
        return cli_env(self.base_url, api_key)

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/_standin/health")

    def inject(self, **fault: Any) -> dict[str, Any]:
        Fault(**fault)  # validate here, so a mistake fails in the caller
        return self._call("POST", "/_standin/faults", content=json.dumps(fault))["added"][0]

    def clear_faults(self) -> None:
        self._call("DELETE", "/_standin/faults")

    def requests(self, kind: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "/_standin/requests", params={"kind": kind} if kind else None)

    def clear_requests(self) -> None:
        self._call("DELETE", "/_standin/requests")
