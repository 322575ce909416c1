"""Fast unit tests of the stand-in model over HTTP (no CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prefect_claude_sessions.tasks.standin import RemoteStandin, StandinModel, create_app, triage
from prefect_claude_sessions.tasks.standin.app import RequestLog
from prefect_claude_sessions.tasks.standin.faults import FaultBook

BILLING = "x-anthropic-billing-header: cc_version=2.1.332; cc_entrypoint=sdk-py;"
PREAMBLE = "You are a Claude agent, built on Anthropic's Claude Agent SDK."
TOOLS = [{"name": "Write", "input_schema": {}}, {"name": "Edit", "input_schema": {}}]


def body(
    *prompts: str,
    system: str = "You are a tester.",
    stream: bool = False,
    extra: list | None = None,
) -> dict:
    messages: list[dict] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>\nignore me\n</system-reminder>\n"},
                {"type": "text", "text": prompts[0]},
            ],
        },
        {"role": "system", "content": "# Environment\n - Primary working directory: /srv/work\n"},
    ]
    for p in prompts[1:]:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": "ok"}]})
        messages.append({"role": "user", "content": [{"type": "text", "text": p}]})
    messages += extra or []
    return {
        "model": "claude-test",
        "system": [{"type": "text", "text": t} for t in (BILLING, PREAMBLE, system)],
        "messages": messages,
        "tools": TOOLS,
        "max_tokens": 1000,
        "stream": stream,
    }


@pytest.fixture
def app_parts():
    log, faults = RequestLog(), FaultBook()
    return create_app(log, faults), log, faults


@pytest.fixture
async def http(app_parts):
    app, _, _ = app_parts
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://standin"
    ) as c:
        yield c


def sse_frames(text: str) -> list[tuple[str, dict]]:
    frames = []
    for chunk in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        frames.append((lines["event"], json.loads(lines["data"])))
    return frames


async def test_non_streaming_echo_counts_earlier_turns(http) -> None:
    r = await http.post("/v1/messages?beta=true", json=body("first", "second", "third"))
    assert r.status_code == 200
    msg = r.json()
    assert (
        msg["type"] == "message" and msg["role"] == "assistant" and msg["stop_reason"] == "end_turn"
    )
    assert msg["content"] == [
        {"type": "text", "text": "echo: third | earlier user turns: 2 | first: first"}
    ]
    assert msg["usage"]["input_tokens"] > 0


async def test_streaming_reply_is_a_complete_sse_message(http) -> None:
    r = await http.post("/v1/messages", json=body("hi there", stream=True))
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = sse_frames(r.text)
    names = [name for name, _ in frames]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    text = "".join(d["delta"]["text"] for n, d in frames if n == "content_block_delta")
    assert text == "echo: hi there | earlier user turns: 0 | first: hi there"


async def test_scripted_write_streams_tool_use_with_input_json_delta(http) -> None:
    r = await http.post(
        "/v1/messages", json=body("write file notes.txt with content: hello", stream=True)
    )
    frames = sse_frames(r.text)
    start = next(d for n, d in frames if n == "content_block_start")
    assert (
        start["content_block"]["type"] == "tool_use" and start["content_block"]["name"] == "Write"
    )
    partial = "".join(d["delta"]["partial_json"] for n, d in frames if n == "content_block_delta")
    assert json.loads(partial) == {"file_path": "/srv/work/notes.txt", "content": "hello"}
    assert frames[-2][1]["delta"]["stop_reason"] == "tool_use"

    tool_id = start["content_block"]["id"]
    follow = body(
        "write file notes.txt with content: hello",
        extra=[
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": tool_id, "name": "Write", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "ok"}],
            },
        ],
    )
    done = (await http.post("/v1/messages", json=follow)).json()
    assert (
        done["content"][0]["text"] == "Wrote /srv/work/notes.txt."
        and done["stop_reason"] == "end_turn"
    )


async def test_scripted_edit_reads_then_edits_and_reports_tool_errors(http) -> None:
    prompt = "edit file a.txt replace: old with: new"
    first = (await http.post("/v1/messages", json=body(prompt))).json()
    assert first["content"][0]["name"] == "Read"
    read = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}],
    }
    second = (
        await http.post(
            "/v1/messages",
            json=body(
                prompt,
                extra=[
                    read,
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "t1", "content": "1\told"}
                        ],
                    },
                ],
            ),
        )
    ).json()
    assert second["content"][0]["name"] == "Edit"
    assert second["content"][0]["input"] == {
        "file_path": "/srv/work/a.txt",
        "old_string": "old",
        "new_string": "new",
    }
    failed = (
        await http.post(
            "/v1/messages",
            json=body(
                prompt,
                extra=[
                    read,
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t1",
                                "content": "no such file",
                                "is_error": True,
                            }
                        ],
                    },
                ],
            ),
        )
    ).json()
    assert failed["content"][0]["text"] == "Tool error: no such file"


@pytest.mark.parametrize(
    ("email", "category", "priority"),
    [
        ("Our site is down and customers see errors! URGENT", "technical", "P1"),
        ("The export button throws an error since yesterday.", "technical", "P2"),
        ("I was charged twice on my last invoice, please refund.", "billing", "P3"),
        ("I am locked out and cannot reset my password.", "account", "P3"),
        ("Could you send a quote for 50 enterprise seats?", "sales", "P4"),
        ("Thanks for the lovely conference last week.", "general", "P4"),
    ],
)
def test_triage_rules(email: str, category: str, priority: str) -> None:
    verdict = triage(email)
    assert (verdict["category"], verdict["priority"]) == (category, priority)
    assert verdict["summary"] and verdict["reply"]


async def test_triage_and_specialist_brains_follow_the_system_prompt(http, app_parts) -> None:
    r = await http.post(
        "/v1/messages",
        json=body(
            "hello",
            "Invoice 1234 is wrong, refund me",
            system="You triage incoming support e-mail.",
        ),
    )
    verdict = json.loads(r.json()["content"][0]["text"])
    assert verdict["category"] == "billing" and verdict["earlier_emails"] == 1
    r = await http.post(
        "/v1/messages", json=body("take over", system="You are the billing specialist.\nDetails...")
    )
    assert r.json()["content"][0]["text"] == (
        "[You are the billing specialist.] handling: take over | earlier user turns: 0"
    )
    _, log, _ = app_parts
    assert [e["brain"] for e in log.entries()] == ["triage", "specialist"]


async def test_request_log_tells_main_from_title_calls(http, app_parts) -> None:
    _, log, _ = app_parts
    await http.post("/v1/messages", json=body("main call"))
    title = {
        "model": "claude-test",
        "system": [
            {"type": "text", "text": "You are naming a coding session so the user can pick it."}
        ],
        "messages": [{"role": "user", "content": "<session>\nmain call\n</session>"}],
        "tools": [],
        "output_config": {
            "format": {
                "type": "json_schema",
                "schema": {"properties": {"title": {"type": "string"}}},
            }
        },
    }
    r = await http.post("/v1/messages", json=title)
    assert json.loads(r.json()["content"][0]["text"]) == {"title": "main call"}
    kinds = [e["kind"] for e in log.entries()]
    assert kinds == ["main", "title"]
    main = log.entries("main")[0]
    assert main["system"] == "You are a tester." and main["user_turns"] == ["main call"]
    assert (
        main["cwd"] == "/srv/work"
        and main["tools"] == ["Write", "Edit"]
        and main["model"] == "claude-test"
    )
    assert (await http.get("/_standin/requests", params={"kind": "title"})).json()[0][
        "kind"
    ] == "title"


async def test_probe_count_tokens_and_unknown_routes(http, app_parts) -> None:
    assert (await http.head("/api/hello")).status_code == 200
    r = await http.post(
        "/v1/messages/count_tokens", json={"messages": [{"role": "user", "content": "x" * 400}]}
    )
    assert r.json()["input_tokens"] >= 100
    r = await http.get("/v1/something/else")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    _, log, _ = app_parts
    assert log.entries("unknown")[0]["path"] == "/v1/something/else"


@pytest.mark.parametrize(
    ("status", "etype"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ],
)
async def test_status_faults_answer_with_anthropic_error_bodies(http, status, etype) -> None:
    r = await http.post("/_standin/faults", json={"status": status, "count": 2})
    assert r.status_code == 200 and r.json()["added"][0]["remaining"] == 2
    for _ in range(2):
        r = await http.post("/v1/messages", json=body("hi"))
        assert r.status_code == status
        assert r.json() == {
            "type": "error",
            "error": {"type": etype, "message": r.json()["error"]["message"]},
        }
    assert (await http.post("/v1/messages", json=body("hi"))).status_code == 200  # used up


async def test_faults_spare_auxiliary_calls_unless_asked(http, app_parts) -> None:
    _, _, faults = app_parts
    await http.post("/_standin/faults", json={"status": 529})
    title = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "output_config": {"format": {"schema": {"properties": {"title": {}}}}},
    }
    assert (await http.post("/v1/messages", json=title)).status_code == 200
    assert (await http.post("/v1/messages", json=body("hi"))).status_code == 529
    await http.post("/_standin/faults", json={"status": 500, "calls": "all"})
    assert (await http.post("/v1/messages", json=title)).status_code == 500
    assert faults.active() == []


async def test_latency_fault_and_clearing(http) -> None:
    await http.post("/_standin/faults", json={"latency_s": 0.3, "count": None})
    t = time.monotonic()
    assert (await http.post("/v1/messages", json=body("hi"))).status_code == 200
    assert time.monotonic() - t >= 0.3
    assert len((await http.get("/_standin/faults")).json()) == 1
    await http.delete("/_standin/faults")
    assert (await http.get("/_standin/faults")).json() == []


async def test_cut_stream_breaks_the_response(http) -> None:
    await http.post("/_standin/faults", json={"cut_stream": True, "count": 2})
    with pytest.raises(Exception, match="cut"):
        await http.post("/v1/messages", json=body("hi", stream=True))
    with pytest.raises(Exception, match="cut"):
        await http.post("/v1/messages", json=body("hi", stream=False))


async def test_bad_fault_specs_are_refused(http) -> None:
    for spec in ({"status": 200}, {"bogus": 1}, {"count": 0, "status": 500}, {}):
        r = await http.post("/_standin/faults", json=spec)
        assert r.status_code == 422, spec
    assert (await http.post("/v1/messages", content=b"not json")).status_code == 400


def test_model_in_a_thread_with_remote_control_and_log_file(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    with StandinModel(log_path=log) as model:
        remote = RemoteStandin(model.base_url)
        assert model.env()["ANTHROPIC_BASE_URL"] == model.base_url
        assert model.env()["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
        remote.inject(status=529, count=1)
        r = httpx.post(model.base_url + "/v1/messages", json=body("over the wire"))
        assert r.status_code == 529 and r.headers["retry-after"] == "0"
        r = httpx.post(model.base_url + "/v1/messages", json=body("over the wire"))
        assert r.status_code == 200
        assert [e["status"] for e in remote.requests(kind="main")] == [529, 200]
        assert [e["status"] for e in model.requests()] == [529, 200]
        lines = [json.loads(x) for x in log.read_text().splitlines()]
        assert [x["user_turns"] for x in lines] == [["over the wire"]] * 2
        remote.clear_requests()
        assert model.requests() == [] and log.read_text() == ""
    with pytest.raises(httpx.HTTPError):
        httpx.get(model.base_url + "/_standin/health", timeout=1)


def test_runs_as_a_command(tmp_path: Path) -> None:
    log = tmp_path / "cmd.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect_claude_sessions.tasks.standin",
            "--port",
            "0",
            "--log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        remote = StandinModel.attach(url)
        assert remote.health()["ok"] is True
        httpx.post(url + "/v1/messages", json=body("from another process"))
        assert remote.requests()[0]["user_turns"] == ["from another process"]
        assert "from another process" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
