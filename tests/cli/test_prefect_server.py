"""The package's Prefect-server launcher (`prefect_claude_sessions.flows.prefect_server`), with
real ``prefect server start`` processes: the port it chose and lost is replaced, a requested
port is never changed, the API and UI settings follow the port, and stop leaves nothing
running."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prefect_claude_sessions.flows.prefect_server import (
    LEAN_SERVICES,
    PortInUse,
    PortTaken,
    PrefectServerProcess,
    choose_port,
    descendants,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def occupied() -> Iterator[socket.socket]:
    """A port some other process listens on."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", choose_port()))
    sock.listen()
    yield sock
    sock.close()


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_requested_port_in_use_is_refused_naming_it(occupied: socket.socket) -> None:
    port = occupied.getsockname()[1]
    with pytest.raises(PortInUse, match=f"port {port} is in use"):
        PrefectServerProcess(Path("/nonexistent"), port=port)
    with pytest.raises(PortInUse, match="not a TCP port"):
        choose_port(70000)
    assert choose_port(skip=range(4200, 4210)) >= 4210


def test_a_lost_port_is_replaced_and_stop_leaves_nothing(
    tmp_path: Path, occupied: socket.socket
) -> None:
    server = PrefectServerProcess(tmp_path / "home", settings=LEAN_SERVICES)
    lost = server.port
    occupied.close()
    # another process takes the chosen port between the choice and the server's bind
    thief = socket.socket()
    thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    thief.bind(("127.0.0.1", lost))
    thief.listen()
    try:
        with server:
            assert server.port != lost
            assert server.env()["PREFECT_SERVER_API_PORT"] == str(server.port)
            assert server.env()["PREFECT_UI_API_URL"] == f"http://127.0.0.1:{server.port}/api"
            assert httpx.get(f"{server.api_url}/health", timeout=5).json() is True
            assert "already in use" in server.log_text()
            pid = server.pid
            assert pid is not None
            tree = [pid, *descendants(pid)]
            port = server.port
    finally:
        thief.close()
    assert not server.alive()
    assert not listening(port)
    assert [p for p in tree if Path(f"/proc/{p}").exists()] == []


def test_a_requested_port_taken_before_the_bind_is_an_error(tmp_path: Path) -> None:
    port = choose_port()
    server = PrefectServerProcess(tmp_path / "home", port=port, settings=LEAN_SERVICES)
    with socket.socket() as thief:
        thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        thief.bind(("127.0.0.1", port))
        thief.listen()
        with pytest.raises(PortTaken, match=f"port {port} was taken"):
            server.ready(timeout_s=60)
    assert not server.alive()
    assert server.port == port
