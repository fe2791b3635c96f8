"""A per-client rate on the requests that make tasks (POST /api/tasks and retries), counted by the client's
address, not its cookie (a cookie costs nothing to drop), and counted on arrival: a request refused later, for a
bad image or a full studio, has cost the server its body and its decode, so it counts as much as one accepted.

A token bucket per address in each process (so `serve --processes N` allows N times the rate at most); the
oldest addresses are forgotten past MAX_CLIENTS.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from genkeep.web.clients import Network, client_address
from genkeep.web.problems import problem

MAX_CLIENTS = 100_000


def makes_tasks(method: str, path: str) -> bool:
    return method == "POST" and (path == "/api/tasks" or (path.startswith("/api/tasks/") and path.endswith("/retry")))


class ClientRate:
    def __init__(self, app: ASGIApp, *, per_minute: int, trusted_proxies: Sequence[Network] = ()) -> None:
        self.app = app
        self.per_second = per_minute / 60
        self.burst = float(per_minute)
        self.trusted_proxies = tuple(trusted_proxies)
        # address -> (tokens, when they were counted)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _take(self, address: str) -> float:
        """0 if the request may go on, else the seconds until it could."""
        moment = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.pop(address, (self.burst, moment))
            tokens = min(self.burst, tokens + (moment - then) * self.per_second)
            wait = 0.0
            if tokens >= 1:
                tokens -= 1
            else:
                wait = (1 - tokens) / self.per_second
            self._buckets[address] = (tokens, moment)
            if len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
        return wait

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.per_second or not makes_tasks(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        wait = self._take(client_address(scope, self.trusted_proxies))
        if wait:
            await problem(
                429, "too_many_requests",
                f"This address sent more than {self.burst:g} new generations in a minute; wait "
                f"{math.ceil(wait)} seconds, then send again.",
                headers={"Retry-After": str(math.ceil(wait))})(scope, receive, send)
            return
        await self.app(scope, receive, send)
