"""Triage throughput: e-mails per minute of the ``email-triage`` flow over generated inboxes of
50, 100 and 200 e-mails, and the peak memory of the worker (this Python process plus its CLI
children, sampled from /proc every 100 ms; the Prefect server is reported apart).

Two in every five generated e-mails are technical or billing, so the flow hands them to a
specialist (a new session: a CLI start and a copy of the triage transcript). Baselines measured
in the same run on the smallest inbox: the flow with ``hand_off=False``, and the bare SDK
(one kept-open ``ClaudeSDKClient`` answering each e-mail, no store, no hand-offs).

    .venv/bin/python benchmarks/triage_throughput.py            # 50, 100, 200 e-mails
    .venv/bin/python benchmarks/triage_throughput.py --quick    # 10, 20 e-mails
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bare import BareSDK, bare_options
from benchmarks.common import (
    RssSampler,
    base_parser,
    close_default_pool,
    figure,
    loadavg,
    prefect_server,
    store_database,
    tempdir,
    worker_env,
    write_result,
)

TEMPLATES = [
    ("Production API down", "Our API returns error 500 since this morning, all users affected."),
    ("Invoice wrong", "We were charged twice on invoice {i}; please refund the extra payment."),
    ("Cannot log in", "I am locked out of my account {i}, the password reset does not arrive."),
    ("Pricing question", "Could you send a quote for 50 enterprise seats? We want a demo."),
    ("Thanks", "Just wanted to say thanks for the quick help last week, message {i}."),
]


def generate_inbox(n: int, tag: str) -> list[dict]:
    out = []
    for i in range(n):
        subject, body = TEMPLATES[i % len(TEMPLATES)]
        out.append(
            {
                "id": f"{tag}-{i:04d}",
                "sender": f"customer{i % 37}@example.com",
                "subject": f"{subject} #{i}",
                "body": body.format(i=i),
            }
        )
    return out


def run(sizes: list[int], store_kind: str) -> dict:
    from prefect_claude_sessions.flows.profiles import TRIAGE_PROMPT
    from prefect_claude_sessions.flows.triage import Email, email_triage

    results: dict = {"flow": {}, "baselines": {}}
    with tempdir("bench-triage-") as tmp_name:
        tmp = Path(tmp_name)
        with (
            store_database(store_kind, tmp) as url,
            worker_env(tmp, url) as model,
            prefect_server(tmp),
        ):
            try:
                for n in sizes:
                    emails = [Email.model_validate(e) for e in generate_inbox(n, f"n{n}")]
                    with RssSampler() as rss:
                        started = time.perf_counter()
                        out = email_triage(
                            team=f"bench{n}", emails=emails, hand_off=True, review_priorities=[]
                        )
                        seconds = time.perf_counter() - started
                    assert len(out) == n
                    handoffs = sum(1 for r in out if r.specialist_session_id)
                    results["flow"][n] = {
                        "seconds": round(seconds, 2),
                        "emails_per_min": round(n * 60 / seconds, 1),
                        "handoffs": handoffs,
                        **rss.result_mb(),
                    }
                    print(f"triage {n}: {results['flow'][n]}", file=sys.stderr)
                    close_default_pool()
                n = sizes[0]
                emails = [Email.model_validate(e) for e in generate_inbox(n, f"noh{n}")]
                started = time.perf_counter()
                email_triage(
                    team=f"benchnohand{n}", emails=emails, hand_off=False, review_priorities=[]
                )
                seconds = time.perf_counter() - started
                results["baselines"]["flow_without_handoff"] = {
                    "emails": n,
                    "seconds": round(seconds, 2),
                    "emails_per_min": round(n * 60 / seconds, 1),
                }
                close_default_pool()
                bare = BareSDK()
                try:
                    opts = bare_options(
                        model.env(), os.environ["CLAUDE_CONFIG_DIR"], os.getcwd(), TRIAGE_PROMPT
                    )
                    with RssSampler() as rss:
                        started = time.perf_counter()
                        bare.open("triage", opts)
                        for e in emails:
                            bare.turn("triage", e.as_prompt())
                        seconds = time.perf_counter() - started
                finally:
                    bare.close()
                results["baselines"]["bare_client"] = {
                    "emails": n,
                    "seconds": round(seconds, 2),
                    "emails_per_min": round(n * 60 / seconds, 1),
                    **rss.result_mb(),
                }
            finally:
                close_default_pool()
    return results


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    sizes = args.sizes or ([10, 20] if args.quick else [50, 100, 200])
    started, load = time.time(), loadavg()
    raw = run(sizes, args.store)
    flow, base = raw["flow"], raw["baselines"]
    smallest, largest = sizes[0], sizes[-1]
    figures = [
        figure(
            f"triage flow, {n} e-mails (with hand-offs)",
            flow[n]["emails_per_min"],
            "e-mails/min",
            baseline=f"bare kept-open client, {smallest} e-mails, no hand-offs",
            baseline_value=base["bare_client"]["emails_per_min"],
        )
        for n in sizes
    ]
    figures.append(
        figure(
            f"triage flow without hand-offs, {smallest} e-mails",
            base["flow_without_handoff"]["emails_per_min"],
            "e-mails/min",
            baseline=f"bare kept-open client, {smallest} e-mails",
            baseline_value=base["bare_client"]["emails_per_min"],
        )
    )
    figures.append(
        figure(
            f"peak worker RSS, {largest} e-mails",
            flow[largest]["peak_worker_mb"],
            "MB",
            baseline=f"peak worker RSS, {smallest} e-mails",
            baseline_value=flow[smallest]["peak_worker_mb"],
        )
    )
    write_result(
        "triage_throughput",
        quick=args.quick,
        params={"sizes": sizes, "store": args.store, "handoff_share": 0.4},
        figures=figures,
        details={"flow": {str(k): v for k, v in flow.items()}, "baselines": base},
        notes=[
            "peak_worker_mb = this Python process + its CLI children (summed RSS, so shared pages "
            "count once per process); the Prefect server is a separate process and reported apart.",
        ],
        load_before=load,
        started=started,
        out=args.out,
    )


if __name__ == "__main__":
    main()
