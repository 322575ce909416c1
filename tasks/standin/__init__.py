"""A local stand-in for the Anthropic Messages API, for the tests and the offline demo.

It is a test double for the model only: the library never starts it or falls back to it on its
own. Start it explicitly (``StandinModel().start()`` or ``python -m prefect_claude_sessions.tasks.standin``) and point the
CLI at it with ``StandinModel.env()``.
"""

from prefect_claude_sessions.tasks.standin.app import RequestLog, create_app
from prefect_claude_sessions.tasks.standin.brains import triage
from prefect_claude_sessions.tasks.standin.faults import Fault
from prefect_claude_sessions.tasks.standin.server import (
    STANDIN_API_KEY,
    RemoteStandin,
    StandinModel,
    cli_env,
)

__all__ = [
    "STANDIN_API_KEY",
    "Fault",
    "RemoteStandin",
    "RequestLog",
    "StandinModel",
    "cli_env",
    "create_app",
    "triage",
]
