"""Per-request fault injection for the stand-in model.

A fault is consumed by matching requests until its ``count`` runs out (``count=None``: until
cleared). Each request takes at most one fault, the oldest active one that matches.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

CallScope = Literal["main", "all"]


@dataclass
class Fault:
    """One injected misbehaviour.

    - ``status``: answer with this HTTP status and an Anthropic error JSON body;
    - ``latency_s``: wait this long before answering (alone or with another fault);
    - ``cut_stream``: start the reply, then drop the connection mid-message;
    - ``count``: how many requests it affects (None = until cleared);
    - ``calls``: "main" (only main conversation calls) or "all" (auxiliary calls too);
    - ``message``/``headers``: override the error message / add response headers;
    - ``reply_text``: answer 200 with exactly this text instead of the brain's reply (a model
      or gateway that echoes something it should not, e.g. the API key).
    """

    status: int | None = None
    latency_s: float = 0.0
    cut_stream: bool = False
    count: int | None = 1
    calls: CallScope = "main"
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    reply_text: str | None = None
    used: int = 0

    def __post_init__(self) -> None:
        if self.status is not None and not (400 <= int(self.status) <= 599):
            raise ValueError(
                f"fault status must be an HTTP error status 400-599, got {self.status}"
            )
        if self.latency_s < 0:
            raise ValueError("latency_s must be >= 0")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be >= 1, or None for 'until cleared'")
        if self.calls not in ("main", "all"):
            raise ValueError("calls must be 'main' or 'all'")
        if (
            self.status is None
            and not self.cut_stream
            and not self.latency_s
            and self.reply_text is None
        ):
            raise ValueError("a fault needs status, cut_stream, latency_s or reply_text")

    @property
    def remaining(self) -> int | None:
        return None if self.count is None else self.count - self.used

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["remaining"] = self.remaining
        return d


FAULT_FIELDS = {
    "status",
    "latency_s",
    "cut_stream",
    "count",
    "calls",
    "message",
    "headers",
    "reply_text",
}


def fault_from_dict(data: dict[str, Any]) -> Fault:
    unknown = set(data) - FAULT_FIELDS
    if unknown:
        raise ValueError(
            f"unknown fault field(s): {sorted(unknown)}; known: {sorted(FAULT_FIELDS)}"
        )
    return Fault(**data)


class FaultBook:
    """Thread-safe list of active faults (the server thread consumes, tests inject)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, kind: str) -> Fault | None:
        """Consume one use of the first fault that matches a call of this kind."""
        with self._lock:
            for fault in self._faults:
                if fault.calls == "main" and kind != "main":
                    continue
                fault.used += 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None
