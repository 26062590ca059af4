"""Load test for the Slack adapter, entirely on 127.0.0.1.

Starts a fake Slack Web API (tests/slack_api_server.py) and `policybot serve --http` as a separate
process, sends signed app_mention events at a steady rate for a bounded count and time, and prints
acknowledgement latency (HTTP response) p50/p95/p99 and answer latency (until the threaded
chat.postMessage is recorded) p50/p95.

    .venv/bin/python bench/load_slack.py --count 60 --rate 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.slack_api_server import TEAM_ID, ServeProcess, SlackAPIServer, post_signed  # noqa: E402

SECRET = "load-test-secret"
QUESTIONS = [
    "can I accept a follow from an ex-pupil aged 18?",
    "may I post photos of pupils on my personal Instagram?",
    "can I use my own phone to message parents?",
    "is it ok to be friends with parents on Facebook?",
    "can I mention the school in my personal blog?",
]


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def event(i: int, ts: str) -> str:
    text = QUESTIONS[i % len(QUESTIONS)]
    body = {"type": "app_mention", "user": f"U{i:05d}", "text": f"<@UBOT> {text}", "ts": ts, "channel": "CLOAD", "event_ts": ts}
    return json.dumps({"token": "legacy", "team_id": TEAM_ID, "api_app_id": "A0001", "type": "event_callback",
                       "event_id": f"EvLoad{i:05d}", "event_time": int(time.time()), "event": body,
                       "authorizations": [{"team_id": TEAM_ID, "user_id": "UBOT", "is_bot": True}]})


def measure(count: int, rate: float, max_seconds: float) -> dict:
    """Start the Slack endpoint in its own process, send `count` signed mentions at `rate` a second; the figures."""
    work = Path(tempfile.mkdtemp(prefix="policybot-load-"))
    data = work / "data"
    data.mkdir()
    if (ROOT / "data" / "index").is_dir():
        shutil.copytree(ROOT / "data" / "index", data / "index")  # else `serve` builds it before listening
    config = work / "policybot.yaml"
    config.write_text("slack:\n  channel_schools: {CLOAD: chiltern}\n", encoding="utf-8")

    slack = SlackAPIServer().start()
    started = time.monotonic()
    served = ServeProcess(slack.base_url, data, SECRET, config=config)
    ready = time.monotonic() - started
    sent: dict[str, float] = {}
    acks: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def send(i: int, ts: str):
        t0 = time.monotonic()
        with lock:
            sent[ts] = t0
        status, _ = post_signed(served.url, event(i, ts), SECRET)
        with lock:
            acks.append(time.monotonic() - t0)
            statuses.append(status)

    try:
        slack.reset()
        interval = 1.0 / rate
        begin = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            for i in range(count):
                time.sleep(max(0.0, begin + i * interval - time.monotonic()))
                pool.submit(send, i, f"1800000000.{i:06d}")
        sending = time.monotonic() - begin

        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline:
            answered = {c.body.get("thread_ts") for c in slack.calls("chat.postMessage")}
            if len(answered & set(sent)) >= count:
                break
            time.sleep(0.05)
        slack.wait_quiet(quiet=0.5, timeout=5)

        posts = [c for c in slack.calls("chat.postMessage") if c.body.get("thread_ts") in sent]
        first: dict[str, float] = {}
        for call in posts:
            first.setdefault(call.body["thread_ts"], call.at)
        return figures("Slack", count, rate, ready, sending, statuses, acks, [first[ts] - sent[ts] for ts in first],
                       len(posts) - len(first))
    finally:
        served.stop()
        slack.stop()
        shutil.rmtree(work, ignore_errors=True)


def figures(platform: str, count: int, rate: float, ready: float, sending: float, statuses: list[int], acks: list[float],
            answers: list[float], duplicates: int) -> dict:
    return {"platform": platform, "count": count, "rate": rate, "ready_s": ready, "sending_s": sending,
            "accepted": sum(200 <= s < 300 for s in statuses), "ack_p50": percentile(acks, 50), "ack_p95": percentile(acks, 95),
            "ack_p99": percentile(acks, 99), "ack_max": max(acks, default=float("nan")), "answer_p50": percentile(answers, 50),
            "answer_p95": percentile(answers, 95), "answer_max": max(answers, default=float("nan")),
            "answer_mean": statistics.fmean(answers) if answers else float("nan"), "answered": len(answers), "duplicates": duplicates}


def report(f: dict) -> None:
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    print(f"[{f['platform']}] server ready in {f['ready_s']:.1f}s; sent {f['count']} messages at {f['rate']}/s in {f['sending_s']:.1f}s "
          f"(2xx: {f['accepted']}/{f['count']})")
    print(f"[{f['platform']}] ack latency     p50 {ms(f['ack_p50'])}  p95 {ms(f['ack_p95'])}  p99 {ms(f['ack_p99'])}  max {ms(f['ack_max'])}")
    print(f"[{f['platform']}] answer latency  p50 {ms(f['answer_p50'])}  p95 {ms(f['answer_p95'])}  max {ms(f['answer_max'])}  "
          f"(mean {ms(f['answer_mean'])})")
    print(f"[{f['platform']}] answered {f['answered']}/{f['count']}, duplicate answers {f['duplicates']}")


def ok(f: dict) -> bool:
    return f["answered"] == f["count"] and f["duplicates"] == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--rate", type=float, default=5.0, help="events per second")
    parser.add_argument("--max-seconds", type=float, default=180.0, help="give up waiting for answers after this")
    args = parser.parse_args()
    result = measure(args.count, args.rate, args.max_seconds)
    report(result)
    return 0 if ok(result) else 1


if __name__ == "__main__":
    sys.exit(main())
