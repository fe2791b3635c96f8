"""A fake ComfyUI server: /upload/image, /prompt, /queue, /history/{id}, /view and /ws, as ComfyUI answers them.

Each GET /history/{id} advances a queued prompt one step: pending, running, then its outcome.
Knobs: mode (ok, rate_limited, server_error, hang, malformed), outcome (success, error, no_image),
honours_prompt_id (False: an old ComfyUI that picks its own ids), hold (True: started prompts stay running),
require_key (an authenticating proxy in front); restart() forgets everything, as a real restart does.

websocket=True serves /ws?clientId=… (off by default: /ws answers 404, as behind a proxy that passes no
websockets). A prompt whose client has its socket open runs by itself, as in ComfyUI, instead of step by step
with the history lookups: its socket gets execution_start, executing, then per sampler step a progress message
and a binary preview frame (PREVIEW_STEPS of them, JPEG and PNG by turns), then execution_success, the history
entry, and executing with node null. foreign_preview=True first sends a preview of a prompt queued without a
client id (ComfyUI sends those to every socket); drop_socket=True breaks the connection after the first preview,
and the prompt goes on step by step with the history lookups. A prompt on a socket finishes only once
`may_finish` is set (it is, unless a test clears it to keep the prompt running until its previews were read).
"""

from __future__ import annotations

import io
import json
import struct
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from PIL import Image

from tests.engines.providers.fakes import HANG, FakeApp, FakeWebSocket, Reply, Request, png

RESULT_COLOR = (120, 20, 160)
PROXY_KEY = "comfy-proxy-key"
PREVIEW_STEPS = 3
PREVIEW_SIZE = (64, 48)
FOREIGN_COLOR = (250, 230, 0)
# Sampler previews start as noise-grey and come closer to RESULT_COLOR step by step.
NOISE_COLOR = (128, 128, 128)
# ComfyUI's binary event type of a preview, and its image formats.
PREVIEW_IMAGE = 1
JPEG, PNG = 1, 2


def preview_color(step: int) -> tuple[int, int, int]:
    """The colour of the preview sent at sampler step `step` (1-based)."""
    share = step / (PREVIEW_STEPS + 1)
    r, g, b = (round(a + (z - a) * share) for a, z in zip(NOISE_COLOR, RESULT_COLOR, strict=True))
    return (r, g, b)


def preview_frame(color: tuple[int, int, int], image_format: int) -> bytes:
    """A binary preview message as ComfyUI sends it: event type, image format, encoded image."""
    out = io.BytesIO()
    Image.new("RGB", PREVIEW_SIZE, color).save(out, "JPEG" if image_format == JPEG else "PNG", quality=95)
    return struct.pack(">II", PREVIEW_IMAGE, image_format) + out.getvalue()


@dataclass
class Queued:
    prompt_id: str
    workflow: dict[str, Any]
    client_id: str = ""
    looks: int = 0
    # Run by itself, reporting on its client's socket, rather than step by step with the history lookups.
    on_socket: bool = False


class FakeComfyUI(FakeApp):
    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
        self.outcome = "success"
        self.honours_prompt_id = True
        self.require_key = False
        self.steps_to_finish = 3
        self.hold = False
        self.websocket = False
        self.foreign_preview = False
        self.drop_socket = False
        self.may_finish = threading.Event()
        self.may_finish.set()
        self.sockets: dict[str, FakeWebSocket] = {}
        self.uploads: dict[str, bytes] = {}
        self.queue: dict[str, Queued] = {}
        self.history: dict[str, dict[str, Any]] = {}
        self.submitted: list[Queued] = []
        self._lock = threading.Lock()

    def restart(self) -> None:
        with self._lock:
            self.queue.clear()
            self.history.clear()
            for socket in self.sockets.values():
                socket.drop()

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
        if route == ("GET", "ws") and self.websocket:
            client_id = request.query.get("clientId", "")
            return Reply(websocket=lambda socket: self._connected(client_id, socket))
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
        queued = Queued(str(prompt_id or uuid.uuid4()), workflow, client_id=str(body.get("client_id") or ""))
        self.queue[queued.prompt_id] = queued
        self.submitted.append(queued)
        number = len(self.submitted)
        socket = self.sockets.get(queued.client_id)
        if socket is not None and not socket.closed.is_set():
            self._start(queued, socket)
        return Reply.json({"prompt_id": queued.prompt_id, "number": number, "node_errors": {}})

    def _connected(self, client_id: str, socket: FakeWebSocket) -> None:
        """A client opened /ws: greet it as ComfyUI does, and run its waiting prompt."""
        with self._lock:
            # One socket per client id: a new one replaces the old.
            self.sockets[client_id] = socket
            waiting = [q for q in self.queue.values() if q.client_id == client_id and q.looks == 0]
            socket.send_json({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": len(self.queue)}},
                                                         "sid": client_id}})
            for queued in waiting:
                self._start(queued, socket)

    def _start(self, queued: Queued, socket: FakeWebSocket) -> None:
        queued.on_socket = True
        threading.Thread(target=self._run, args=(queued, socket), name="fake-comfyui-run", daemon=True).start()

    def _run(self, queued: Queued, socket: FakeWebSocket) -> None:
        """Run a prompt as ComfyUI does, reporting on its client's socket."""
        prompt_id = queued.prompt_id
        if self.foreign_preview:
            socket.send_binary(preview_frame(FOREIGN_COLOR, JPEG))
        with self._lock:
            queued.looks = max(queued.looks, 1)
        socket.send_json({"type": "execution_start", "data": {"prompt_id": prompt_id, "timestamp": 1}})
        socket.send_json({"type": "executing", "data": {"node": "3", "display_node": "3", "prompt_id": prompt_id}})
        for step in range(1, PREVIEW_STEPS + 1):
            socket.send_json({"type": "progress", "data": {"value": step, "max": PREVIEW_STEPS,
                                                           "prompt_id": prompt_id, "node": "3"}})
            socket.send_binary(preview_frame(preview_color(step), JPEG if step % 2 else PNG))
            if self.drop_socket:
                socket.drop()
                with self._lock:
                    queued.on_socket = False
                return
        if self.hold or not self.may_finish.wait(10):
            return
        socket.send_json({"type": "execution_success", "data": {"prompt_id": prompt_id, "timestamp": 2}})
        with self._lock:
            if self.queue.get(prompt_id) is not queued:
                return
            del self.queue[prompt_id]
            self.history[prompt_id] = self._finished(queued)
        socket.send_json({"type": "executing", "data": {"node": None, "prompt_id": prompt_id}})

    def _queue(self) -> Reply:
        items = [[n, q.prompt_id, q.workflow, {"client_id": q.client_id}, ["24"]]
                 for n, q in enumerate(self.queue.values())]
        running = [item for item in items if self.queue[str(item[1])].looks >= 1]
        pending = [item for item in items if self.queue[str(item[1])].looks == 0]
        return Reply.json({"queue_running": running, "queue_pending": pending})

    def _history(self, prompt_id: str) -> Reply:
        if self.mode == "malformed":
            return Reply(200, b"<html>proxy login</html>", "text/html")
        queued = self.queue.get(prompt_id)
        if queued is not None and not queued.on_socket:
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
