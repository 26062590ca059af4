"""Load test for the Teams adapter beside the Slack one, in the same run, entirely on 127.0.0.1.

Starts the local identity and Bot Connector stand-ins (tests/teams_standins.py) and `policybot serve --teams`
as a separate process, posts authenticated message activities (JWTs signed with the stand-in's key) at a steady
rate, and prints time to ready, acknowledgement latency and answer latency (until the reply reaches the
connector), then the same for Slack (bench/load_slack.py); rounds alternate, and the Teams/Slack ratios
are of the medians over rounds.

    .venv/bin/python bench/load_teams.py --count 60 --rate 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import load_slack  # noqa: E402
from tests.slack_api_server import text_after  # noqa: E402
from tests.teams_standins import APP_ID, APP_PASSWORD, TENANT, Connector, Identity, activity, personal_conversation, post  # noqa: E402


def config_text(identity: Identity) -> str:
    return (f"school: chiltern\nteams:\n  app_id: \"{APP_ID}\"\n  app_password: \"{APP_PASSWORD}\"\n  tenant_id: \"{TENANT}\"\n"
            f"  openid_metadata_url: \"{identity.openid_url}\"\n  token_url: \"{identity.token_url}\"\n")


def start(data: Path, config: Path, timeout: float = 180.0) -> tuple[subprocess.Popen, str, float]:
    exe = Path(sys.executable).parent / "policybot"
    env = {**os.environ, "POLICYBOT_CONFIG": str(config), "HF_HUB_OFFLINE": "1"}
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        env.pop(name, None)
    started = time.monotonic()
    process = subprocess.Popen([str(exe), "--data", str(data), "serve", "--teams", "--host", "127.0.0.1", "--port", "0"],
                               cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=open(data / "serve.log", "wb"))
    url = text_after(process.stdout, "bound to ", timeout)
    if url is None:
        process.kill()
        raise RuntimeError(f"policybot serve --teams did not start; log:\n{(data / 'serve.log').read_text(errors='replace')[-3000:]}")
    return process, url, time.monotonic() - started


def measure(count: int, rate: float, max_seconds: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="policybot-load-teams-"))
    data = work / "data"
    data.mkdir()
    if (ROOT / "data" / "index").is_dir():
        shutil.copytree(ROOT / "data" / "index", data / "index")
    identity, connector = Identity(), Connector()
    config = work / "policybot.yaml"
    config.write_text(config_text(identity), encoding="utf-8")
    process, url, ready = start(data, config)
    sent: dict[str, tuple[str, float]] = {}  # activity id -> (its reply path, when it was sent)
    acks: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def send(i: int):
        question = load_slack.QUESTIONS[i % len(load_slack.QUESTIONS)]
        activity_id, user = f"18000000{i:05d}", f"29:load-{i:05d}"
        body = activity(connector, question, activity_id=activity_id, user=user, aad=f"aad-load-{i}")
        token = identity.mint(connector.service_url)
        with lock:
            sent[activity_id] = (f"/{personal_conversation(user)}/activities/{activity_id}", time.monotonic())
        status, _, took = post(url, body, token)
        with lock:
            acks.append(took)
            statuses.append(status)

    try:
        interval = 1.0 / rate
        begin = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            for i in range(count):
                time.sleep(max(0.0, begin + i * interval - time.monotonic()))
                pool.submit(send, i)
        sending = time.monotonic() - begin
        paths = {path: activity_id for activity_id, (path, _) in sent.items()}
        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline and len({c.path for c in connector.calls() if c.path.endswith(tuple(paths))}) < count:
            time.sleep(0.05)
        connector.wait_quiet(quiet=0.5, timeout=5)
        replies = [c for c in connector.calls() if c.method == "POST" and any(c.path.endswith(p) for p in paths)]
        first: dict[str, float] = {}
        for call in replies:
            activity_id = next(paths[p] for p in paths if call.path.endswith(p))
            first.setdefault(activity_id, call.at)
        answers = [first[a] - sent[a][1] for a in first]
        return load_slack.figures("Teams", count, rate, ready, sending, statuses, acks, answers, len(replies) - len(first))
    finally:
        process.terminate()
        process.wait(30)
        identity.stop()
        connector.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--rate", type=float, default=5.0, help="messages per second")
    parser.add_argument("--max-seconds", type=float, default=180.0)
    parser.add_argument("--rounds", type=int, default=3, help="Teams then Slack, this many times; the ratios are of medians")
    args = parser.parse_args()
    # one run's tail on two shared cores moves by 2x between runs of the same server; alternating rounds and
    # comparing medians keeps a slow minute of the machine from being read as a difference between platforms
    rounds: dict[str, list[dict]] = {"Teams": [], "Slack": []}
    for _ in range(args.rounds):
        rounds["Teams"].append(measure(args.count, args.rate, args.max_seconds))
        load_slack.report(rounds["Teams"][-1])
        rounds["Slack"].append(load_slack.measure(args.count, args.rate, args.max_seconds))
        load_slack.report(rounds["Slack"][-1])
    for key in ("ready_s", "ack_p95", "answer_p50", "answer_p95"):
        teams, slack = (statistics.median(f[key] for f in rounds[name]) for name in ("Teams", "Slack"))
        print(f"Teams/Slack {key:10} {teams / slack:.2f}x   (medians of {args.rounds}: Teams {teams:.3f}, Slack {slack:.3f})")
    return 0 if all(load_slack.ok(f) for runs in rounds.values() for f in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
