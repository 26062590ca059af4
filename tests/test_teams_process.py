"""TeamsApp.run in a process of its own, as `policybot serve --teams` runs it: it says where it listens, answers,
and stops cleanly on SIGTERM. The core is built by bot/runtime.py, lazily (nothing here needs the model)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.teams_standins import Connector, Identity, activity, personal_conversation, post, teams_settings

ROOT = Path(__file__).resolve().parent.parent
SERVE = """
import sys
from bot.escalation.delivery import Deliverer
from bot.runtime import Runtime
from bot.settings import Settings
from bot.teams.server import teams_parts

settings = Settings.model_validate_json(open(sys.argv[1]).read())
runtime = Runtime(settings)
parts = teams_parts(settings)
core = runtime.conversation(Deliverer(runtime.escalations, {"teams": parts.alerts}, settings))
parts.app(core, runtime.escalations).run("127.0.0.1", 0)
print("stopped", flush=True)
"""


def test_run_listens_on_a_free_port_answers_and_stops_on_sigterm(tmp_path):
    identity, connector = Identity(), Connector()
    config = tmp_path / "settings.json"
    config.write_text(teams_settings(tmp_path, identity, connector).model_dump_json(), encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-c", SERVE, str(config)], cwd=str(ROOT), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(process.stdout.readline().decode()), daemon=True)
        reader.start()
        reader.join(120)
        assert lines and "bound to http://127.0.0.1:" in lines[0], process.stderr.read().decode()[-2000:] if not lines else lines
        url = lines[0].split("bound to ", 1)[1].strip()

        assert post(url, activity(connector, "help"), identity.mint(connector.service_url))[0] == 202
        [reply] = connector.wait_for(lambda c: c.path.endswith(f"/{personal_conversation()}/activities/1700000100001"))
        assert reply.body["text"].startswith("Ask me a policy question")
        assert post(url, activity(connector, "help", activity_id="2"), None)[0] == 401

        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert process.stdout.readline().decode().strip() == "stopped"
    finally:
        if process.poll() is None:
            process.kill()
        identity.stop()
        connector.stop()
