"""The published OpenAPI document is the truth, checked from outside: schemathesis (every check) against a live
`genkeep serve`, on SQLite and on PostgreSQL.

Schemathesis reads /openapi.json and sends what it allows (real small images, from tests/support's hooks) and
what it forbids, unknown methods included, then follows the document's links (create → get → cancel → retry →
delete). Every answer must be one the document declares, with its content type, schema and headers; every
schema-valid request must be accepted and every invalid one refused. Tasks take 2 s on the scripted engine, so
they can be canceled, retried and deleted while some complete.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.processes import REPO, genkeep_env, serving

pytestmark = pytest.mark.slow

SECRET = "test-secret-key-" + "x" * 16
# Cases per operation and phase: about 1,500 cases per run, well under a minute on two busy cores.
MAX_EXAMPLES = 200
OPERATIONS = [
    ("POST", re.compile(r"/api/tasks")), ("GET", re.compile(r"/api/tasks")),
    ("GET", re.compile(r"/api/tasks/[^/]+")), ("POST", re.compile(r"/api/tasks/[^/]+/cancel")),
    ("POST", re.compile(r"/api/tasks/[^/]+/retry")), ("DELETE", re.compile(r"/api/tasks/[^/]+")),
]


SEED = 20261130


def _run_schemathesis(base: str, tmp_path: Path) -> tuple[str, list[dict[str, object]]]:
    from genkeep.web.owner import OwnerCookies

    # One owner for the whole run, so that what one request creates the next can see.
    _, cookie = OwnerCookies(SECRET).mint()
    report = tmp_path / "schemathesis.ndjson"
    env = dict(os.environ, SCHEMATHESIS_HOOKS="tests.support.schemathesis_hooks", PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json", "--checks", "all",
               "--max-examples", str(MAX_EXAMPLES), "--header", f"Cookie: genkeep_owner={cookie}", "--no-color",
               "--generation-database", "none", "--report", "ndjson", "--report-ndjson-path", str(report),
               # A fixed seed: the same cases every run, so the checks below that the run did real work (a form
               # of every type accepted) cannot pass or fail by chance. Change it to explore other cases.
               "--seed", str(SEED)]
    finished = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    output = finished.stdout + finished.stderr
    # The summary (cases, failures and the seed to replay them) shows with `pytest -s`, and on failure.
    print(output[output.rfind("=== SUMMARY ==="):] if "=== SUMMARY ===" in output else output[-3000:])
    assert finished.returncode == 0, output[-20000:]
    events = [json.loads(line) for line in report.read_text().splitlines()]
    return output, events


def _answers(events: list[dict[str, object]]) -> dict[str, collections.Counter[tuple[str, str, int]]]:
    """Per phase: how often each operation answered each status."""
    answers: dict[str, collections.Counter[tuple[str, str, int]]] = collections.defaultdict(collections.Counter)
    for event in events:
        finished = event.get("ScenarioFinished")
        if not isinstance(finished, dict):
            continue
        for interaction in finished["recorder"].get("interactions", {}).values():
            request, response = interaction["request"], interaction.get("response")
            if response is None:
                continue
            path = re.sub(r"^https?://[^/]+", "", request["uri"]).split("?")[0]
            for method, pattern in OPERATIONS:
                if request["method"] == method and pattern.fullmatch(path):
                    answers[finished["phase"]][(method, pattern.pattern, response["status_code"])] += 1
                    break
    return answers


def _created_types(events: list[dict[str, object]]) -> set[str]:
    """The types of the tasks schemathesis's generated forms created."""
    created = set()
    for event in events:
        finished = event.get("ScenarioFinished")
        if not isinstance(finished, dict):
            continue
        for interaction in finished["recorder"].get("interactions", {}).values():
            response = interaction.get("response")
            if interaction["request"]["method"] == "POST" and response and response["status_code"] == 201:
                task = json.loads(base64.b64decode(response["content"]["$base64"]))
                if task["reference_images"]:
                    created.add(task["type"])
    return created


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_every_answer_is_one_the_document_declares(database: str, tmp_path: Path,
                                                   request: pytest.FixtureRequest) -> None:
    url = (f"sqlite:///{tmp_path / 'genkeep.db'}" if database == "sqlite"
           else request.getfixturevalue("postgres_url"))
    env = genkeep_env(tmp_path / "data", url, GENKEEP_ENGINE="tests.support.engines:create_engine",
                      GENKEEP_WORKERS="1", GENKEEP_TEST_RUN_SECONDS="2",
                      GENKEEP_MAX_UNFINISHED_PER_OWNER="100000", GENKEEP_MAX_UNFINISHED="100000",
                      GENKEEP_CLIENT_RATE="0", GENKEEP_SECRET_KEY=SECRET)
    with serving(env, tmp_path / "serve.log") as (_process, base):
        output, events = _run_schemathesis(base, tmp_path)
        # Methods beyond schemathesis's list: refused by the HTTP parser (400) or by genkeep (405), never a 500.
        for method in ("FOO", "PROPFIND", "CONNECT", "TRACE"):
            assert httpx.request(method, f"{base}/api/tasks").status_code in (400, 405), method
    assert re.search(r"\d+ generated, \d+ passed", output), output[-3000:]
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
    # Not vacuous: the generated forms were accepted (with real images for every type that needs them) and the
    # links were followed through a whole task's life.
    assert _created_types(events) >= {"WHITE_BACKGROUND", "CLOTHING_CHANGE"}
    # The phases that send ids the server gave out (the stateful walk along the links, and fuzzing, which reuses
    # them): between them every step of a task's life succeeded. Which of the two reaches a step depends on the
    # walk the seed takes through the server's answers, so a change to an answer may move a step from one to the
    # other; neither may be missing from both.
    answers = _answers(events)
    with_ids = answers["stateful"] + answers["fuzzing"]
    for operation, status in [(("POST", r"/api/tasks"), 201), (("GET", r"/api/tasks/[^/]+"), 200),
                              (("POST", r"/api/tasks/[^/]+/cancel"), 200),
                              (("POST", r"/api/tasks/[^/]+/retry"), 201),
                              (("DELETE", r"/api/tasks/[^/]+"), 204)]:
        assert with_ids[(*operation, status)] > 0, (operation, status, dict(answers))
