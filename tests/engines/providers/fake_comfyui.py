"""A fake ComfyUI server: /upload/image, /prompt, /queue, /history/{id} and /view, as ComfyUI answers them.

Each GET /history/{id} advances a queued prompt one step: pending, running, then its outcome.
Knobs: mode (ok, rate_limited, server_error, hang, malformed), outcome (success, error, no_image),
honours_prompt_id (False: an old ComfyUI that picks its own ids), hold (True: started prompts stay running),
require_key (an authenticating proxy in front); restart() forgets everything, as a real restart does.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from tests.engines.providers.fakes import HANG, FakeApp, Reply, Request, png

RESULT_COLOR = (120, 20, 160)
PROXY_KEY = "comfy-proxy-key"


@dataclass
class Queued:
    prompt_id: str
    workflow: dict[str, Any]
    looks: int = 0


class FakeComfyUI(FakeApp):
    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
        self.outcome = "success"
        self.honours_prompt_id = True
        self.require_key = False
        self.steps_to_finish = 3
        self.hold = False
        self.uploads: dict[str, bytes] = {}
        self.queue: dict[str, Queued] = {}
        self.history: dict[str, dict[str, Any]] = {}
        self.submitted: list[Queued] = []
        self._lock = threading.Lock()

    def restart(self) -> None:
        with self._lock:
            self.queue.clear()
            self.history.clear()

    def finish_all(self) -> None:
        """Run every queued prompt to its outcome."""
        with self._lock:
            for queued in list(self.queue.values()):
                del self.queue[queued.prompt_id]
                self.history[queued.prompt_id] = self._finished(queued)

    def handle(self, request: Request) -> Reply:
        if self.require_key and request.headers.get("authorization") != f"Bearer {PROXY_KEY}":
            return Reply(401, b"401: Unauthorized", "text/plain")
        if self.mode == "rate_limited":
            return Reply(429, b"Too Many Requests", "text/plain")
        if self.mode == "server_error":
            return Reply(502, b"<html>502 Bad Gateway</html>", "text/html")
        if self.mode == "hang":
            return HANG
        route = (request.method, request.path.split("/")[1] if "/" in request.path else "")
        with self._lock:
            if route == ("POST", "upload"):
                return self._upload(request)
            if route == ("POST", "prompt"):
                return self._prompt(request)
            if route == ("GET", "queue"):
                return self._queue()
            if route == ("POST", "queue"):
                # Like ComfyUI, deleting from the queue only drops prompts that have not started.
                for prompt_id in request.json().get("delete", []):
                    if prompt_id in self.queue and self.queue[prompt_id].looks == 0:
                        del self.queue[prompt_id]
                return Reply(200, b"", "text/plain")
            if route == ("POST", "interrupt"):
                self.queue.pop(request.json().get("prompt_id", ""), None)
                return Reply(200, b"", "text/plain")
            if route == ("GET", "history"):
                return self._history(request.path.rsplit("/", 1)[-1])
            if route == ("GET", "view"):
                return self._view(request)
        return Reply(404, b"404: Not Found", "text/plain")

    def _upload(self, request: Request) -> Reply:
        parts = {part.name: part for part in request.parts()}
        image = parts.get("image")
        if image is None or not image.filename:
            return Reply(400, b"", "text/plain")
        assert parts["overwrite"].data == b"true"
        self.uploads[image.filename] = image.data
        return Reply.json({"name": image.filename, "subfolder": "", "type": "input"})

    def _prompt(self, request: Request) -> Reply:
        body = request.json()
        workflow = body["prompt"]
        text = json.dumps(workflow)
        node_errors: dict[str, Any] = {}
        for node_id, node in workflow.items():
            inputs = node.get("inputs", {})
            if node.get("class_type") == "LoadImage" and inputs.get("image") not in self.uploads:
                node_errors[node_id] = {"errors": [{"type": "custom_validation_failed",
                                                    "message": "Invalid image file",
                                                    "details": f"image - Invalid image file: {inputs.get('image')}",
                                                    "extra_info": {}}],
                                        "dependent_outputs": [], "class_type": "LoadImage"}
            if node.get("class_type") == "KSampler" and not isinstance(inputs.get("seed"), int):
                node_errors[node_id] = {"errors": [{"type": "invalid_input_type",
                                                    "message": "Failed to convert an input value to a INT value",
                                                    "details": f"seed, {inputs.get('seed')}", "extra_info": {}}],
                                        "dependent_outputs": [], "class_type": "KSampler"}
        if "{{" in text or node_errors:
            return Reply.json({"error": {"type": "prompt_outputs_failed_validation",
                                         "message": "Prompt outputs failed validation", "details": "",
                                         "extra_info": {}}, "node_errors": node_errors}, 400)
        prompt_id = body.get("prompt_id") if self.honours_prompt_id else None
        queued = Queued(str(prompt_id or uuid.uuid4()), workflow)
        self.queue[queued.prompt_id] = queued
        self.submitted.append(queued)
        number = len(self.submitted)
        return Reply.json({"prompt_id": queued.prompt_id, "number": number, "node_errors": {}})

    def _queue(self) -> Reply:
        items = [[n, q.prompt_id, q.workflow, {"client_id": "genkeep"}, ["24"]]
                 for n, q in enumerate(self.queue.values())]
        running = [item for item in items if self.queue[str(item[1])].looks >= 1]
        pending = [item for item in items if self.queue[str(item[1])].looks == 0]
        return Reply.json({"queue_running": running, "queue_pending": pending})

    def _history(self, prompt_id: str) -> Reply:
        if self.mode == "malformed":
            return Reply(200, b"<html>proxy login</html>", "text/html")
        queued = self.queue.get(prompt_id)
        if queued is not None:
            queued.looks = min(queued.looks + 1, self.steps_to_finish - 1) if self.hold else queued.looks + 1
            if queued.looks >= self.steps_to_finish:
                del self.queue[prompt_id]
                self.history[prompt_id] = self._finished(queued)
        entry = self.history.get(prompt_id)
        return Reply.json({prompt_id: entry} if entry else {})

    def _finished(self, queued: Queued) -> dict[str, Any]:
        start = ["execution_start", {"prompt_id": queued.prompt_id, "timestamp": 1}]
        if self.outcome == "error":
            error = ["execution_error", {"prompt_id": queued.prompt_id, "node_id": "1", "node_type": "UNETLoader",
                                         "executed": [], "exception_message": "CUDA out of memory.",
                                         "exception_type": "torch.OutOfMemoryError", "traceback": []}]
            return {"prompt": [], "outputs": {},
                    "status": {"status_str": "error", "completed": False, "messages": [start, error]}}
        outputs = {} if self.outcome == "no_image" else {
            "9": {"images": [{"filename": "preview_00001_.png", "subfolder": "", "type": "temp"}]},
            "24": {"images": [{"filename": "genkeep_00001_.png", "subfolder": "", "type": "output"}]},
        }
        done = ["execution_success", {"prompt_id": queued.prompt_id, "timestamp": 2}]
        return {"prompt": [], "outputs": outputs,
                "status": {"status_str": "success", "completed": True, "messages": [start, done]}}

    def _view(self, request: Request) -> Reply:
        if request.query == {"filename": "genkeep_00001_.png", "subfolder": "", "type": "output"}:
            return Reply(200, png(RESULT_COLOR), "image/png")
        return Reply(404, b"", "text/plain")
