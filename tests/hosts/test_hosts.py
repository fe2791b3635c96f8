"""The studio on hosts of its own (network namespaces, one process group per program), under the faults of many
machines. The short form (in `make test`): a worker cut off from the database (a), an API host killed under a
browser (c), the database restarted (f). The long form (`make hosts`) adds a worker cut off from the bucket while
saving (b), clocks ten minutes off (d) and a rolling restart of every host (e), and makes the faults longer.

Every scenario asserts the chaos suite's promises (nothing lost or stuck, no run over the attempt limit, no two
runs of one task at once, no fault recorded as a failure) and one more: exactly one stored result per completed
task. The hosts are shared by the module; each scenario judges its own tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.chaos.cluster import OWNER_HEADER
from tests.chaos.ledger import Run, Verdict, read_runs, read_tasks, runs_by_task
from tests.chaos.profile import PROFILE, SHORT
from tests.chaos.traffic import Poller, TaskStream, during, keep_going
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, REQUIRE_BROWSER
from tests.hosts.ledger import from_client, settle_and_judge, worst_latency
from tests.hosts.network import run_in
from tests.hosts.topology import API_HOSTS, API_PORT, WORKER_HOSTS, Studio
from tests.support.clocks import skewed
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.hosts, pytest.mark.slow]

SHORT_FORM = PROFILE is SHORT
CUT_SECONDS = 6.0 if SHORT_FORM else 20.0
DB_DOWN_SECONDS = 4.0 if SHORT_FORM else 15.0
SKEW_SECONDS = 20.0  # how long tasks run with clocks off (the long form only)
Table = Callable[[Verdict, float | None], None]


def prompt(number: int) -> str:
    # Every fourth task is long enough to be caught in the middle by a cut.
    return f"slow:6 long #{number}" if number % 4 == 1 else f"slow:1.5 #{number}"


def stream_through_proxy(studio: Studio, *, interval: float = 1.0, give_up_after: float = 20.0) -> TaskStream:
    return TaskStream(studio.proxy_url, prompt, interval=interval, concurrency=4, give_up_after=give_up_after,
                      request_timeout=10, setup=from_client(studio))


def poller_through_proxy(studio: Studio, stream: TaskStream) -> Poller:
    return Poller(studio.proxy_url, stream, interval=0.2, request_timeout=10, setup=from_client(studio))


def runs_on(studio: Studio, host: str, *, since: float = 0.0) -> list[Run]:
    pids = set(studio.programs[host].pids)
    return [run for run in read_runs(studio.run_events) if run.pid in pids and run.started >= since]


def test_a_worker_cut_off_from_the_database_loses_its_task_to_another_and_comes_back(
        studio: Studio, hosts_table: Table) -> None:
    limits = studio.limits
    worker = studio.programs["worker1"]
    with stream_through_proxy(studio) as stream, poller_through_proxy(studio, stream) as poller:
        caught: Run = wait_for(
            lambda: next((run for run in runs_on(studio, "worker1") if run.ended is None
                          and "long" in stream.accepted.get(run.task_id, "") and time.time() - run.started > 0.5),
                         None),
            timeout=90, interval=0.1, message="worker1 to be in the middle of a long task")
        cut_at = time.time()
        studio.cut("worker1", "db")
        try:
            taken_over: Run = wait_for(
                lambda: next((run for run in read_runs(studio.run_events) if run.task_id == caught.task_id
                              and run.pid != caught.pid and run.started > cut_at), None),
                timeout=30, interval=0.05, message="another worker to take the cut worker's task over")
            keep_going(max(0.0, cut_at + CUT_SECONDS - time.time()))
        finally:
            studio.heal("worker1", "db")
        healed_at = time.time()
        back = wait_for(lambda: next(iter(runs_on(studio, "worker1", since=healed_at)), None), timeout=30,
                        interval=0.1, message="worker1 to run tasks again once the link is back")
    verdict = settle_and_judge(studio, "a. worker1 cut off from db", stream)
    verdict.takeover = taken_over.started - cut_at
    # The lease was renewed at most a heartbeat before the cut: it runs out within a lease of it, and an idle
    # worker's poll finds it within one poll interval; the margin is this 2-core machine's scheduling.
    bound = limits.lease_seconds + limits.heartbeat + limits.poll_interval + 0.5
    if verdict.takeover > bound:
        verdict.problem(f"takeover took {verdict.takeover:.2f} s after the cut, over lease + heartbeat + poll "
                        f"(+0.5 s) = {bound:.2f} s")
    cut_run = next(run for run in read_runs(studio.run_events) if run.run_id == caught.run_id)
    if cut_run.ended is None or cut_run.ended > taken_over.started or cut_run.outcome == "ok":
        verdict.problem(f"the cut worker's engine was not stopped before the takeover (ended {cut_run.ended}, "
                        f"{cut_run.outcome}; taken over at {taken_over.started:.2f})")
    if not worker.running() or worker.pid != back.pid:
        verdict.problem("worker1 did not come back on its own: it was restarted or exited")
    hosts_table(verdict, worst_latency(during(poller.answers, cut_at, healed_at)))
    print(f"takeover {verdict.takeover:.2f} s; worker1's engine stopped {cut_run.ended and cut_run.ended - cut_at} "
          f"s after the cut ({cut_run.outcome}); back {back.started - healed_at:.2f} s after the heal")
    assert not verdict.problems, "\n".join(verdict.problems)


def runs_after(studio: Studio, host: str, moment: float) -> Callable[[], list[Run]]:
    return lambda: runs_on(studio, host, since=moment)


def ready(url: str) -> Callable[[], bool]:
    return lambda: wait_for(lambda: httpx.get(url, timeout=2).status_code == 200, timeout=30, interval=0.2,
                            message=f"{url} to answer 200")


def test_every_process_reconnects_when_the_database_restarts(studio: Studio, hosts_table: Table) -> None:
    before = {name: studio.programs[name].pid for name in (*API_HOSTS, *WORKER_HOSTS)}
    with stream_through_proxy(studio, give_up_after=DB_DOWN_SECONDS + 30) as stream, \
            poller_through_proxy(studio, stream) as poller:
        wait_for(lambda: len(stream.accepted) >= 4, timeout=60, message="tasks to be accepted")
        stopped_at = time.time()
        studio.stop_db()
        keep_going(DB_DOWN_SECONDS)
        studio.start_db()
        started_at = time.time()
        # Every worker runs a task again, and both API hosts say they are ready, without any restart.
        for host in WORKER_HOSTS:
            wait_for(runs_after(studio, host, started_at), timeout=60, interval=0.2,
                     message=f"{host} to run a task after the database came back")
        for host in API_HOSTS:
            run_in(studio.namespace(host), ready(f"http://{studio.address(host)}:{API_PORT}/readyz"))
        keep_going(2.0)
    verdict = settle_and_judge(studio, f"f. db restarted ({DB_DOWN_SECONDS:g} s down)", stream)
    restarted = [name for name, pid in before.items() if studio.programs[name].pid != pid
                 or not studio.programs[name].running()]
    if restarted:
        verdict.problem(f"restarted or exited instead of reconnecting: {restarted}")
    hosts_table(verdict, worst_latency(during(poller.answers, stopped_at, started_at + 10)))
    assert not verdict.problems, "\n".join(verdict.problems)


@pytest.mark.parametrize("gone", [False, pytest.param(True, marks=pytest.mark.skipif(
    SHORT_FORM, reason="the long form's (make hosts)"))], ids=["process-killed", "host-gone"])
def test_a_page_polling_through_the_proxy_rides_out_an_api_host_killed(studio: Studio, hosts_table: Table,
                                                                       gone: bool) -> None:
    """api1's processes killed -9: its port refuses at once. Host gone: killed and its packets dropped too, as
    when a machine loses power, so the proxy hears nothing until its connect timeout and health checks."""
    if not CHROMIUM.exists():
        reason = f"no browser: {CHROMIUM} is missing (apt-get install chromium)"
        if REQUIRE_BROWSER:
            pytest.fail(reason + " and GENKEEP_REQUIRE_BROWSER=1")
        pytest.skip(reason)

    def fault() -> None:
        if gone:
            studio.cut("proxy", "api1")
        studio.kill("api1")

    try:
        with stream_through_proxy(studio) as stream, poller_through_proxy(studio, stream) as poller:
            seen = run_in(studio.namespace("client"), lambda: browse_through_a_fault(studio, fault), timeout=180)
    finally:
        if gone:
            studio.heal("proxy", "api1")
    killed_at = studio.kills[studio.programs["api1"].pid]
    studio.rolling_restart("api1")
    # The page's task is judged with the stream's.
    stream.accepted[seen.task_id] = seen.prompt
    verdict = settle_and_judge(studio, f"c. api1 {'host gone' if gone else 'killed'} under a page", stream)
    if seen.status != "completed":
        verdict.problem(f"the page's task shows {seen.status}, not its result")
    if seen.reconnecting_seconds > RECONNECTING_BOUND:
        verdict.problem(f"the page said Reconnecting… for {seen.reconnecting_seconds:.1f} s, over "
                        f"{RECONNECTING_BOUND:g} s")
    http_polls = during(poller.answers, killed_at, killed_at + 10)
    unanswered = [answer for answer in http_polls if answer.status != 200]
    if unanswered:
        verdict.problem(f"{len(unanswered)} polls through the proxy did not answer 200: "
                        f"{sorted({f'{answer.status} {answer.detail}' for answer in unanswered})}")
    worst = max(filter(None, [worst_latency(http_polls), *seen.poll_seconds]), default=None)
    hosts_table(verdict, worst)
    print(f"page: {len(seen.poll_seconds)} polls, worst {max(seen.poll_seconds, default=0):.2f} s, failed "
          f"{seen.failed_polls}, Reconnecting… shown {seen.reconnecting_seconds:.1f} s; HTTP client: "
          f"{len(http_polls)} polls in the 10 s after the kill, worst {worst_latency(http_polls)} s")
    assert not verdict.problems, "\n".join(verdict.problems)


# A poll every 2 s: the banner may show for one failed round and its retry, no longer.
RECONNECTING_BOUND = 4.0
SAMPLE_BANNER = """() => {
    window.bannerSamples = [];
    const banner = document.querySelector('#connection-banner');
    setInterval(() => window.bannerSamples.push(!banner.hidden), 100);
}"""


@dataclass
class PageSaw:
    task_id: str
    prompt: str
    status: str
    reconnecting_seconds: float
    poll_seconds: list[float]
    failed_polls: list[str]


def browse_through_a_fault(studio: Studio, fault: Callable[[], None]) -> PageSaw:
    """In Chromium, from the client host: starts a generation on the studio page, makes the fault while the page
    polls it through the proxy, and watches the page until the result shows."""
    from playwright.sync_api import expect, sync_playwright

    prompt = "slow:8 a mug on an oak table"
    poll_seconds: list[float] = []
    failed_polls: list[str] = []

    def finished(request: Any) -> None:
        if request.method == "GET" and "/api/tasks" in request.url:
            poll_seconds.append(request.timing["responseEnd"] / 1000)

    def failed(request: Any) -> None:
        if "/api/tasks" in request.url:
            failed_polls.append(f"{request.method} {request.url}: {request.failure}")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=studio.proxy_url, locale="en-US",
                                          extra_http_headers={OWNER_HEADER: "browser"})
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.on("requestfinished", finished)
            page.on("requestfailed", failed)
            page.goto("/create")
            page.wait_for_selector("html[data-recovered=true]", state="attached")
            page.fill("#prompt", prompt)
            with page.expect_response(lambda r: r.url.endswith("/api/tasks") and r.request.method == "POST") as answer:
                page.click("#submit")
            assert answer.value.status == 201, answer.value.text()
            task_id = answer.value.json()["id"]
            busy = page.locator(f'#in-progress .card[data-id="{task_id}"]')
            expect(busy).to_be_visible()
            page.evaluate(SAMPLE_BANNER)
            # Playwright delivers events only while it waits: wait on the page, not on a plain loop.
            page.wait_for_event("requestfinished", lambda r: r.method == "GET" and "/api/tasks" in r.url,
                                timeout=10_000)
            fault()
            expect(busy).to_have_attribute("aria-busy", "true")
            done = page.locator(f'#history .card[data-id="{task_id}"]')
            expect(done).to_have_attribute("data-status", "completed", timeout=60_000)
            samples: list[bool] = page.evaluate("window.bannerSamples")
            return PageSaw(task_id, prompt, "completed", sum(samples) * 0.1, poll_seconds, failed_polls)
        finally:
            browser.close()


@pytest.mark.skipif(SHORT_FORM, reason="the long form's (make hosts)")
def test_a_rolling_restart_of_every_host_under_a_steady_stream_loses_and_fails_nothing(
        studio: Studio, hosts_table: Table) -> None:
    with stream_through_proxy(studio, interval=0.5) as stream, poller_through_proxy(studio, stream) as poller:
        wait_for(lambda: len(stream.accepted) >= 4, timeout=60, message="tasks to be accepted")
        began = time.time()
        for name in (*API_HOSTS, *WORKER_HOSTS):
            studio.rolling_restart(name)
        ended = time.time()
        keep_going(2.0)
    verdict = settle_and_judge(studio, "e. rolling restart of 5 hosts", stream)
    if verdict.failed:
        verdict.problem(f"failures during a rolling restart: {dict(verdict.failed)}")
    refused = [answer for answer in during(stream.answers, began, ended) if answer.status not in (200, 201)]
    if refused:
        verdict.problem(f"{len(refused)} submissions were not accepted at the first try: "
                        f"{sorted({f'{answer.status} {answer.detail}' for answer in refused})}")
    failed_polls = [answer for answer in during(poller.answers, began, ended) if answer.status != 200]
    if failed_polls:
        verdict.problem(f"{len(failed_polls)} polls through the proxy did not answer 200: "
                        f"{sorted({f'{answer.status} {answer.detail}' for answer in failed_polls})}")
    hosts_table(verdict, worst_latency(during(poller.answers, began, ended)))
    print(f"rolling restart of {len(API_HOSTS) + len(WORKER_HOSTS)} hosts took {ended - began:.1f} s")
    assert not verdict.problems, "\n".join(verdict.problems)


SKEW = 600.0


@pytest.mark.skipif(SHORT_FORM, reason="the long form's (make hosts)")
def test_hosts_ten_minutes_off_decide_no_task_s_fate(studio: Studio, hosts_table: Table) -> None:
    off = {"worker2": -SKEW, "worker3": SKEW, "api2": SKEW}
    skews: dict[int, float] = {}
    try:
        for name, seconds in off.items():
            skews[studio.rolling_restart(name, **skewed(seconds)).pid] = seconds
        with stream_through_proxy(studio, interval=0.7) as stream, poller_through_proxy(studio, stream) as poller:
            began = time.time()
            # Sweeps from a machine ten minutes ahead and one ten minutes behind, while tasks run.
            sweeps = 0
            while time.time() - began < SKEW_SECONDS:
                sweep = studio.sweep("worker1", **skewed(SKEW if sweeps % 2 == 0 else -SKEW))
                assert sweep.wait(timeout=60) == 0, "genkeep sweep failed"
                sweeps += 1
            keep_going(2.0)
    finally:
        for name in off:
            studio.rolling_restart(name, **{key: "" for key in skewed(SKEW)})
    verdict = settle_and_judge(studio, "d. worker2 -10 min, worker3/api2/sweeps ±10 min", stream, skews)
    if verdict.failed:
        verdict.problem(f"failures with clocks off: {dict(verdict.failed)} (a timeout here is a clock's verdict)")
    runs = runs_by_task([run for run in read_runs(studio.run_events) if run.task_id in stream.accepted])
    twice = [task_id for task_id, task_runs in runs.items() if len(task_runs) > 1]
    if twice:
        verdict.problem(f"{len(twice)} tasks ran more than once though no worker died (a lease judged by a clock)")
    rows = run_in(studio.namespace("db"), lambda: read_tasks(studio.database_url))
    misdated = [task_id for task_id, heard in stream.accepted_at.items()
                if task_id in rows and not heard - 5 <= rows[task_id].created_at <= heard + 1]
    if misdated:
        verdict.problem(f"{len(misdated)} tasks' created_at is not the database's time (e.g. "
                        f"{[rows[task_id].created_at - stream.accepted_at[task_id] for task_id in misdated[:3]]})")
    served_by_skewed = {run.pid for task_runs in runs.values() for run in task_runs} & set(skews)
    if not served_by_skewed:
        verdict.problem("no worker with a wrong clock ran any task: the scenario proved nothing")
    hosts_table(verdict, worst_latency(poller.answers))
    print(f"{sweeps} sweeps ran ±10 min off; tasks run by skewed workers: "
          f"{sum(1 for r in runs.values() for run in r if run.pid in skews)}")
    assert not verdict.problems, "\n".join(verdict.problems)


# Shorter than the worker's patience with a storage fault (STORAGE_PATIENCE_S, 20 s): past it the task fails
# with storage_unavailable, which is the product's answer to a bucket gone for everyone.
BUCKET_CUT_SECONDS = 10.0


@pytest.mark.skipif(SHORT_FORM, reason="the long form's (make hosts)")
def test_a_worker_cut_off_from_the_bucket_while_saving_retries_and_completes_once(
        studio: Studio, hosts_table: Table) -> None:
    with stream_through_proxy(studio) as stream, poller_through_proxy(studio, stream) as poller:
        # A long task caught early: the engine needs nothing from the bucket, so the cut meets its save.
        caught: Run = wait_for(
            lambda: next((run for run in runs_on(studio, "worker1") if run.ended is None
                          and "long" in stream.accepted.get(run.task_id, "") and time.time() - run.started < 3),
                         None),
            timeout=90, interval=0.05, message="worker1 to start a long task")
        cut_at = time.time()
        studio.cut("worker1", "bucket")
        try:
            wait_for(lambda: next((run.ended for run in read_runs(studio.run_events)
                                   if run.run_id == caught.run_id), None), timeout=30, interval=0.1,
                     message="the caught run's engine to finish")
            keep_going(max(0.0, cut_at + BUCKET_CUT_SECONDS - time.time()))
        finally:
            studio.heal("worker1", "bucket")
        healed_at = time.time()
        keep_going(3.0)
    verdict = settle_and_judge(studio, f"b. worker1 cut off from bucket {BUCKET_CUT_SECONDS:g} s", stream)
    row = run_in(studio.namespace("db"), lambda: read_tasks(studio.database_url))[caught.task_id]
    runs = [run for run in read_runs(studio.run_events) if run.task_id == caught.task_id]
    engine_done = min((run.ended for run in runs if run.ended is not None), default=None)
    # The save met the cut: its engine was done during the cut and the result was stored only after the heal
    # (boto3's own retries or the worker's, the log says which).
    if engine_done is None or not cut_at < engine_done < healed_at or row.finished_at is None \
            or row.finished_at < healed_at:
        verdict.problem(f"the caught task's save did not meet the cut (engine done {engine_done}, finished "
                        f"{row.finished_at}, cut {cut_at:.2f}..{healed_at:.2f})")
    hosts_table(verdict, worst_latency(during(poller.answers, cut_at, healed_at)))
    hosts = sorted({studio.worker_pids().get(run.pid, "?") for run in runs})
    faults = studio.programs["worker1"].logs().count(f"task {caught.task_id}: storage fault")
    saved_after = (row.finished_at or 0.0) - (engine_done or 0.0)
    print(f"the caught task ran {len(runs)} time(s) on {hosts}; saved {saved_after:.1f} s "
          f"after its engine was done; storage faults the worker retried: {faults}")
    assert not verdict.problems, "\n".join(verdict.problems)
