"""A fake DashScope: the asynchronous image-synthesis API under /api/v1, and the result files it links to.

Each GET /api/v1/tasks/{id} advances a task one step: PENDING, RUNNING, then its outcome. Knobs:
- submit_mode: ok, rate_limited, server_error, hang, malformed, refused, echo (a 400 page that repeats the
  request's headers, as some gateways do)
- outcome: SUCCEEDED, FAILED, REFUSED (FAILED with DataInspectionFailed), no_url, not_image, expired_link,
  redirect (the result link answers 302 to `redirect_to`), elsewhere (the result URL is `redirect_to` itself)
- poll_errors: how many polls answer 500 before the real answers
- hold: while True, started tasks stay RUNNING
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any

from tests.engines.providers.fakes import HANG, FakeApp, Reply, Request, png

API_KEY = "sk-dashscope-test"
RESULT_COLOR = (240, 240, 20)
SERVICE_PATHS = {
    "/api/v1/services/aigc/text2image/image-synthesis",
    "/api/v1/services/aigc/image2image/image-synthesis",
}


def _error(status: int, code: str, message: str) -> Reply:
    return Reply.json({"request_id": "req-1", "code": code, "message": message}, status)


@dataclass
class FakeTask:
    id: str
    model: str
    input: dict[str, Any]
    parameters: dict[str, Any]
    polls: int = 0
    canceled: bool = False


class FakeDashScope(FakeApp):
    def __init__(self) -> None:
        super().__init__()
        self.submit_mode = "ok"
        self.outcome = "SUCCEEDED"
        self.poll_errors = 0
        self.steps_to_finish = 3
        self.hold = False
        self.redirect_to = ""
        self.tasks: dict[str, FakeTask] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def submissions(self) -> list[FakeTask]:
        return list(self.tasks.values())

    def handle(self, request: Request) -> Reply:
        if request.path.startswith("/results/"):
            return self._result_file(request)
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "InvalidApiKey", "Invalid API-key provided.")
        if request.method == "POST" and request.path.rstrip("/") in SERVICE_PATHS:
            return self._submit(request)
        if request.method == "POST" and request.path.startswith("/api/v1/tasks/") and \
                request.path.endswith("/cancel"):
            return self._cancel(request.path.split("/")[-2])
        if request.method == "GET" and request.path.startswith("/api/v1/tasks/"):
            return self._poll(request.path.rsplit("/", 1)[-1])
        return _error(404, "NotFound", f"{request.method} {request.path} does not exist.")

    def _submit(self, request: Request) -> Reply:
        if request.headers.get("x-dashscope-async") != "enable":
            return _error(403, "AccessDenied", "current user api does not support synchronous calls.")
        if self.submit_mode == "rate_limited":
            return _error(429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.")
        if self.submit_mode == "server_error":
            return _error(500, "InternalError", "An internal error has occured, please try again later.")
        if self.submit_mode == "hang":
            return HANG
        if self.submit_mode == "echo":
            echoed = "".join(f"<li>{name}: {value}</li>" for name, value in request.headers.items())
            return Reply(400, f"<html><h1>Bad request</h1><ul>{echoed}</ul></html>".encode(), "text/html")
        if self.submit_mode == "refused":
            return _error(400, "DataInspectionFailed", "Input data may contain inappropriate content.")
        body = request.json()
        problem = _invalid(request.path, body)
        if problem:
            return _error(400, "InvalidParameter", problem)
        with self._lock:
            task = FakeTask(f"task-{next(self._ids):04d}", body["model"], body["input"], body.get("parameters", {}))
            self.tasks[task.id] = task
        if self.submit_mode == "malformed":
            return Reply.json({"request_id": "req-2", "output": {"task_status": "PENDING"}})
        return Reply.json({"request_id": "req-2", "output": {"task_id": task.id, "task_status": "PENDING"}})

    def _cancel(self, task_id: str) -> Reply:
        # DashScope cancels only jobs still queued (PENDING).
        task = self.tasks.get(task_id)
        if task is None or task.polls > 1:
            return _error(400, "UnsupportedOperation", "Failed to cancel the task, please confirm the task status.")
        task.canceled = True
        return Reply.json({"request_id": "req-5"})

    def _poll(self, task_id: str) -> Reply:
        if self.poll_errors > 0:
            self.poll_errors -= 1
            return _error(500, "InternalError", "An internal error has occured, please try again later.")
        task = self.tasks.get(task_id)
        if task is None:
            return Reply.json({"request_id": "req-3", "output": {"task_id": task_id, "task_status": "UNKNOWN"}})
        task.polls = min(task.polls + 1, self.steps_to_finish - 1) if self.hold else task.polls + 1
        output: dict[str, Any] = {"task_id": task_id, "submit_time": "2025-06-30 14:37:53.838"}
        if task.canceled:
            output["task_status"] = "CANCELED"
        elif task.polls < self.steps_to_finish:
            output["task_status"] = "PENDING" if task.polls == 1 else "RUNNING"
        elif self.outcome == "FAILED":
            output.update(task_status="FAILED", code="InternalError.Algo", message="Person not detected in image.")
        elif self.outcome == "REFUSED":
            output.update(task_status="FAILED", code="DataInspectionFailed",
                          message="Output data may contain inappropriate content.")
        else:
            output["task_status"] = "SUCCEEDED"
            url = f"{self.base_url}/results/{task_id}.png?Expires=1&Signature=x"
            if self.outcome == "elsewhere":
                url = self.redirect_to
            if self.outcome == "no_url":
                output["results"] = [{"code": "", "message": ""}]
            elif task.model.startswith("aitryon"):
                output["image_url"] = url
            else:
                output["results"] = [{"orig_prompt": task.input.get("prompt"), "url": url}]
        return Reply.json({"request_id": "req-4", "output": output, "usage": {"image_count": 1}})

    def _result_file(self, request: Request) -> Reply:
        # Object storage checks its own signature; an Authorization header there breaks real downloads.
        if "authorization" in request.headers:
            return Reply(400, b"<Error><Code>InvalidArgument</Code></Error>", "application/xml")
        if self.outcome == "expired_link":
            return Reply(403, b"<Error><Code>AccessDenied</Code><Message>Request has expired.</Message></Error>",
                         "application/xml")
        if self.outcome == "not_image":
            return Reply(200, b"<html>expired</html>", "text/html")
        if self.outcome == "redirect" and not request.path.startswith("/results/final"):
            return Reply(302, b"", "text/plain", headers={"Location": self.redirect_to})
        return Reply(200, png(RESULT_COLOR), "image/png")


def _invalid(path: str, body: dict[str, Any]) -> str | None:
    """What DashScope would reject in this submission, per its documented input fields."""
    model, data = body.get("model"), body.get("input") or {}
    if not isinstance(model, str):
        return 'Required parameter "model" missing from request.'
    if path.startswith("/api/v1/services/aigc/text2image"):
        return None if data.get("prompt") else "input.prompt is required."
    if model.startswith("aitryon"):
        ok = data.get("person_image_url") and data.get("top_garment_url")
        return None if ok else "input.person_image_url and input.top_garment_url are required."
    if model.startswith("wanx2.1-imageedit"):
        ok = data.get("function") == "description_edit" and data.get("prompt") and data.get("base_image_url")
        return None if ok else "input.function, input.prompt and input.base_image_url are required."
    images = data.get("images")
    ok = data.get("prompt") and isinstance(images, list) and 1 <= len(images) <= 3
    return None if ok else "input.prompt and 1 to 3 input.images are required."
