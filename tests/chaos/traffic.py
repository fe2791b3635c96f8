"""Clients, as users would be: a steady stream of new tasks, and probes that time one route again and again.

Both are bounded (they stop when told, every request has a timeout) and talk to 127.0.0.1 only, or from inside
a test host's network when `setup` moves their thread there (tests/hosts).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from typing import Self

import httpx

from tests.chaos.cluster import OWNER_HEADER
from tests.support.images import png_bytes

OWNERS = ("ana", "bo", "chen")


@dataclass(frozen=True)
class Answer:
    """One request: when it started (wall clock), how long it took, and its status (None: no answer at all)."""

    started: float
    seconds: float
    status: int | None
    detail: str = ""


def timed(client: httpx.Client, method: str, url: str, **kwargs: object) -> tuple[Answer, httpx.Response | None]:
    started, clock = time.time(), time.monotonic()
    try:
        response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as error:
        return Answer(started, time.monotonic() - clock, None, type(error).__name__), None
    detail = ""
    if response.status_code >= 400:
        detail = f"{response.headers.get('content-type', '')} retry-after={response.headers.get('retry-after')}"
    return Answer(started, time.monotonic() - clock, response.status_code, detail), response


def keep_going(seconds: float) -> None:
    """Let the load (and the fault) go on for a set time: a duration of the scenario, not a wait on a condition."""
    threading.Event().wait(seconds)


def during(answers: Iterable[Answer], start: float, end: float) -> list[Answer]:
    return [answer for answer in answers if start <= answer.started < end]


@dataclass
class RequestLoop:
    """A client on a thread of its own: the next request every `interval` seconds until stopped, every answer kept.
    With `concurrency` above 1 requests overlap (up to that many at once), so a hanging or retried one does not slow
    the pace; with 1 each waits for the one before, as a probe that times one route in turn."""

    base_url: str
    _: KW_ONLY
    interval: float
    request_timeout: float = 10.0
    concurrency: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    # Called first on the loop's thread (the threads it starts inherit what it did, e.g. a network namespace).
    setup: Callable[[], None] | None = None
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.request_timeout + 5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _request(self, client: httpx.Client, number: int) -> None:
        """The `number`-th request (with its retries, if any); every answer goes into `answers`."""
        raise NotImplementedError

    def _loop(self) -> None:
        if self.setup is not None:
            self.setup()
        # A fresh connection per request: a kept-alive one the server closed meanwhile would fail as "no answer".
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=0)
        with httpx.Client(base_url=self.base_url, timeout=self.request_timeout, headers=self.headers,
                          limits=limits) as client, \
                ThreadPoolExecutor(self.concurrency, thread_name_prefix=type(self).__name__) as overlapping:
            number = 0
            while not self._stop.is_set():
                if self.concurrency == 1:
                    self._request(client, number)
                else:
                    overlapping.submit(self._request, client, number)
                number += 1
                self._stop.wait(self.interval)
            # Requests not yet begun are dropped; those under way finish their current attempt and stop.
            overlapping.shutdown(wait=True, cancel_futures=True)


@dataclass
class TaskStream(RequestLoop):
    """Submits a task every `interval` seconds, each with its own Idempotency-Key, retried (with the same key)
    through refusals, 5xx and a restarting server for up to `give_up_after` seconds, the way a careful client
    does; up to `concurrency` submissions at once. `prompt_for(n)` scripts the n-th task; every `image_every`-th
    task also uploads a reference image."""

    prompt_for: Callable[[int], str]
    _: KW_ONLY
    concurrency: int = 8
    image_every: int = 0
    give_up_after: float = 15.0
    accepted: dict[str, str] = field(default_factory=dict)  # task id → prompt
    owner_of: dict[str, str] = field(default_factory=dict)  # task id → owner
    accepted_at: dict[str, float] = field(default_factory=dict)  # task id → when the client heard 201/200

    def ids_with(self, word: str) -> list[str]:
        return [task_id for task_id, prompt in self.accepted.items() if word in prompt]

    def _request(self, client: httpx.Client, number: int) -> None:
        prompt = self.prompt_for(number)
        owner = OWNERS[number % len(OWNERS)]
        headers = {OWNER_HEADER: owner, "Idempotency-Key": uuid.uuid4().hex}
        files = None
        if self.image_every and number % self.image_every == 0:
            files = [("reference_images", ("reference.png", png_bytes(), "image/png"))]
        deadline = time.monotonic() + self.give_up_after
        while True:
            answer, response = timed(client, "POST", "/api/tasks", data={"type": "CREATE", "prompt": prompt},
                                     files=files, headers=headers)
            self.answers.append(answer)
            if response is not None and response.status_code in (200, 201):
                task_id = response.json()["id"]
                self.owner_of[task_id] = owner
                self.accepted_at[task_id] = time.time()
                self.accepted[task_id] = prompt
                return
            if response is not None and response.status_code < 500 and response.status_code != 429:
                return  # refused for a reason a retry will not change
            if time.monotonic() > deadline or self._stop.wait(0.25):
                return


@dataclass
class RouteProbe(RequestLoop):
    """Times one route every `interval` seconds, each request after the one before, until stopped."""

    path: str
    _: KW_ONLY
    interval: float = 0.2

    def _request(self, client: httpx.Client, number: int) -> None:
        answer, _ = timed(client, "GET", self.path)
        self.answers.append(answer)


@dataclass
class Poller(RequestLoop):
    """Polls the status of accepted tasks round-robin, like open pages do, and keeps every answer."""

    stream: TaskStream
    _: KW_ONLY
    interval: float = 0.1

    def _request(self, client: httpx.Client, number: int) -> None:
        ids = list(self.stream.accepted)
        if ids:
            # Round-robin by polls made: rounds with nothing to poll do not count.
            task_id = ids[len(self.answers) % len(ids)]
            answer, _ = timed(client, "GET", f"/api/tasks/{task_id}",
                              headers={OWNER_HEADER: self.stream.owner_of[task_id]})
            self.answers.append(answer)
