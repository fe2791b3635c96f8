"""A self-hosted ComfyUI server: one workflow (API format) per task type, submitted then polled.

Workflows are JSON files named after the type (create.json, white_background.json, clothing_change.json) in
GENKEEP_COMFYUI_WORKFLOWS, by default the bundled ones. String values may hold placeholders:
{{prompt}} (the type's prompt template with the user's words), {{user_prompt}} (the user's words alone),
{{image_1}}…{{image_4}} (the uploaded reference images, in upload order), {{seed}} (a number derived from the
task, so a resubmission makes the same picture) and {{task_id}}. A value that is exactly one placeholder takes
the placeholder's type ({{seed}} becomes a number).

The prompt_id is chosen by genkeep, derived from the task id, so a worker that crashed after POST /prompt but
before the id was saved finds the job again instead of queueing it twice.

While it waits, genkeep listens on ComfyUI's websocket for the prompt's preview frames and sampler progress
(comfyui_websocket.py); the prompt is queued with a client_id of its own, because ComfyUI sends a prompt's
previews only to the socket of the client that queued it.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx

from genkeep.config import Settings, SettingsError
from genkeep.engines.base import EngineContext, EngineError, EngineJob, EngineResult, SubmitPollEngine
from genkeep.engines.comfyui_websocket import PromptWatch, watching
from genkeep.engines.prompts import render, template_for
from genkeep.engines.provider_http import (
    ErrorDetail,
    Provider,
    ResultLinks,
    download_image,
    field,
    poll,
    read_reference,
    send,
    send_json,
)
from genkeep.tasks.model import TaskType

PREFIX = "GENKEEP_COMFYUI_"
BUNDLED_WORKFLOWS = Path(__file__).parent / "comfyui_workflows"
# ComfyUI runs next to genkeep: poll briskly, it costs nothing.
FIRST_POLL_DELAY = 0.5
MAX_POLL_DELAY = 3.0

# Fixed namespace: the prompt_id of a task must be the same in every genkeep process, forever.
PROMPT_ID_NAMESPACE = uuid.UUID("6f0c2a57-1d7e-4c1b-9a59-3f5c0c8e2b11")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")

PROVIDER = Provider(
    "ComfyUI",
    url_setting=f"{PREFIX}URL",
    timeout_setting=f"{PREFIX}TIMEOUT",
    key_setting=f"{PREFIX}API_KEY",
)
LOST_JOB = EngineError(
    "provider_error", "ComfyUI no longer knows this job (it was probably restarted); retry the task."
)


def prompt_id_for(task_id: str) -> str:
    """The ComfyUI prompt_id genkeep uses for a task: the same for every attempt and every worker."""
    return str(uuid.uuid5(PROMPT_ID_NAMESPACE, task_id))


def client_id_for(task_id: str) -> str:
    """The client_id a task's prompt is queued with, and its websocket opened with, by whichever worker waits.

    One per task: ComfyUI keeps one socket per client id, so workers sharing one would take each other's.
    """
    return f"genkeep-{prompt_id_for(task_id)}"


class ComfyUIEngine(SubmitPollEngine):
    """Runs genkeep's workflows on a ComfyUI server."""

    name = "comfyui"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        folder = Path(settings.comfyui_workflows.strip() or BUNDLED_WORKFLOWS).expanduser()
        self.workflows = {task_type: _load_workflow(folder, task_type) for task_type in TaskType}
        self._headers: dict[str, str] = {}
        api_key = settings.comfyui_api_key.strip()
        if api_key:
            # For a ComfyUI behind an authenticating proxy; ComfyUI itself has no keys.
            self._headers["Authorization"] = f"Bearer {api_key}"
        base_url = settings.comfyui_url.strip().rstrip("/") + "/"
        self._api = httpx.Client(base_url=base_url, headers=self._headers, timeout=settings.comfyui_timeout)
        self._links = ResultLinks(base_url)

    def submit(self, job: EngineJob, ctx: EngineContext) -> str:
        """Queue the type's workflow under genkeep's own prompt_id, unless ComfyUI already has it."""
        prompt_id = prompt_id_for(job.task_id)
        ctx.check()
        if self._state(prompt_id) is not None:
            return prompt_id
        workflow = self.workflows[job.type]
        values: dict[str, Any] = {
            "prompt": render(template_for(self.settings, self.name, job.type), job.prompt),
            "user_prompt": (job.prompt or "").strip(),
            "seed": _seed(job.task_id),
            "task_id": job.task_id,
        }
        wanted = _placeholders(workflow)
        for number, path in enumerate(job.reference_paths, start=1):
            if f"image_{number}" in wanted:
                ctx.check()
                values[f"image_{number}"] = self._upload(job.task_id, number, path)
        missing = sorted(name for name in wanted if name not in values)
        if missing:
            raise EngineError(
                "invalid_input",
                f"The ComfyUI workflow {_file_name(job.type)} needs {', '.join(missing)}, "
                f"but this task has {len(job.reference_paths)} reference image(s).",
            )
        body = {"prompt": _fill(workflow, values), "client_id": client_id_for(job.task_id), "prompt_id": prompt_id}
        answer = send_json(self._api, PROVIDER, "POST", "prompt", json=body, read_error=_read_error)
        queued = field(answer, "prompt_id")
        if not isinstance(queued, str) or not queued:
            raise PROVIDER.malformed("a POST /prompt answer without prompt_id")
        ctx.report_progress(0.05)
        # ComfyUI versions before client-chosen ids ignore ours; theirs is then the one to poll.
        return queued

    def wait(self, job: EngineJob, provider_job_id: str, ctx: EngineContext) -> EngineResult:
        """Poll /history until the prompt finished, showing its previews meanwhile; fetch its image from /view."""
        with watching(self._api.base_url, client_id_for(job.task_id), provider_job_id, self._headers,
                      ctx) as watch:
            return poll(ctx, lambda: self._look(provider_job_id, ctx, watch), first_delay=FIRST_POLL_DELAY,
                        max_delay=MAX_POLL_DELAY, pause=watch.pause if watch is not None else None)

    def _look(self, prompt_id: str, ctx: EngineContext, watch: PromptWatch | None) -> EngineResult | None:
        state = self._state(prompt_id)
        if state is None:
            raise LOST_JOB
        if state == "pending":
            ctx.report_progress(0.1)
        elif state == "running" and watch is None:
            # Without the websocket's sampler progress, "running" is all genkeep knows.
            ctx.report_progress(0.5)
        if isinstance(state, str):
            return None
        status = field(state, "status")
        if field(status, "status_str") == "error":
            raise PROVIDER.job_failed(_execution_error(status))
        image = _output_image(field(state, "outputs"))
        if image is None:
            raise EngineError(
                "provider_error",
                "ComfyUI finished the workflow without saving an image; the workflow needs a SaveImage node.",
            )
        ctx.report_progress(0.9)
        params = {"filename": image["filename"], "subfolder": image.get("subfolder", ""),
                  "type": image.get("type", "output")}
        return download_image(self._api, PROVIDER, str(httpx.URL("view", params=params)), self._links)

    def _state(self, prompt_id: str) -> dict[str, Any] | str | None:
        """The prompt's history entry once it ran, "running"/"pending" while queued, None if unknown."""
        entry = self._history(prompt_id)
        if entry is not None:
            return entry
        queue = send_json(self._api, PROVIDER, "GET", "queue", read_error=_read_error)
        for state, key in (("running", "queue_running"), ("pending", "queue_pending")):
            items = field(queue, key)
            if any(isinstance(item, list) and len(item) > 1 and item[1] == prompt_id for item in items or []):
                return state
        # It may have finished between the two requests.
        return self._history(prompt_id)

    def _history(self, prompt_id: str) -> dict[str, Any] | None:
        history = send_json(self._api, PROVIDER, "GET", f"history/{prompt_id}", read_error=_read_error)
        entry = field(history, prompt_id)
        return entry if isinstance(entry, dict) else None

    def _upload(self, task_id: str, number: int, path: Path) -> str:
        """Upload one reference image; the name the workflow's LoadImage node takes."""
        data, content_type = read_reference(path)
        # Named after the task, never the user's file name: names are shared by everyone using the server.
        name = f"genkeep-{re.sub(r'[^A-Za-z0-9_-]', '_', task_id)}-{number}{path.suffix.lower() or '.png'}"
        answer = send_json(
            self._api, PROVIDER, "POST", "upload/image",
            files={"image": (name, data, content_type)}, data={"overwrite": "true", "type": "input"},
            read_error=_read_error,
        )
        stored = field(answer, "name")
        if not isinstance(stored, str) or not stored:
            raise PROVIDER.malformed("an /upload/image answer without the stored name")
        subfolder = field(answer, "subfolder")
        return f"{subfolder}/{stored}" if isinstance(subfolder, str) and subfolder else stored

    def cancel(self, job: EngineJob, provider_job_id: str) -> None:
        """Drop the job from ComfyUI's queue, or interrupt it if it is the one running."""
        send(self._api, PROVIDER, "POST", "queue", json={"delete": [provider_job_id]}, read_error=_read_error)
        state = self._state(provider_job_id)
        if state == "running":
            send(self._api, PROVIDER, "POST", "interrupt", json={"prompt_id": provider_job_id},
                 read_error=_read_error)

    def close(self) -> None:
        """Release the HTTP connections."""
        self._api.close()


def _file_name(task_type: TaskType) -> str:
    return f"{task_type.value.lower()}.json"


def _load_workflow(folder: Path, task_type: TaskType) -> dict[str, Any]:
    path = folder / _file_name(task_type)
    try:
        workflow = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{PREFIX}WORKFLOWS: {path} is missing; every task type needs a workflow.") from None
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{PREFIX}WORKFLOWS: {path} is not a readable JSON file ({exc}).") from None
    if not isinstance(workflow, dict) or not workflow:
        raise SettingsError(f"{PREFIX}WORKFLOWS: {path} must be a workflow in ComfyUI's API format.")
    return workflow


def _placeholders(value: Any) -> set[str]:
    return set(_PLACEHOLDER.findall(json.dumps(value)))


def _fill(value: Any, values: dict[str, Any]) -> Any:
    """A copy of the workflow with every placeholder replaced."""
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole:
            return values[whole.group(1)]
        return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), value)
    return value


def _seed(task_id: str) -> int:
    # Below 2**31: some custom nodes keep seeds in 32-bit signed integers.
    return int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


def _output_image(outputs: Any) -> dict[str, Any] | None:
    """The image to keep: the first saved one ("output"), else the first of any kind (a preview)."""
    if not isinstance(outputs, dict):
        return None
    images: list[dict[str, Any]] = [
        image
        for node in outputs.values()
        for image in (field(node, "images") or [])
        if isinstance(image, dict) and isinstance(image.get("filename"), str)
    ]
    saved = [image for image in images if image.get("type") == "output"]
    return (saved or images)[0] if images else None


def _execution_error(status: Any) -> ErrorDetail:
    """The failed node's type (shown to the user) and ComfyUI's message (for the log)."""
    for message in field(status, "messages") or []:
        if not (isinstance(message, list) and len(message) == 2):
            continue
        kind, data = message
        if kind == "execution_error":
            node = f"{field(data, 'node_type') or 'a node'} (node {field(data, 'node_id')})"
            return ErrorDetail(str(field(data, "node_type") or ""),
                               f"{node} failed: {field(data, 'exception_message') or 'no message'}")
        if kind == "execution_interrupted":
            return ErrorDetail("execution_interrupted", "the job was interrupted on the ComfyUI server")
    return ErrorDetail(text="the workflow failed without a message")


def _read_error(response: httpx.Response) -> ErrorDetail:
    """ComfyUI's error body: {"error": {"type", "message", "details"} or a string, "node_errors": {id: {...}}}."""
    try:
        body = response.json()
    except ValueError:
        return ErrorDetail(text=response.text.strip() or response.reason_phrase)
    error = field(body, "error")
    parts = [str(field(error, "message") or error or "")]
    details = field(error, "details")
    if details:
        parts.append(str(details))
    node_errors = field(body, "node_errors")
    if isinstance(node_errors, dict):
        for node_id, node in node_errors.items():
            for item in field(node, "errors") or []:
                parts.append(
                    f"node {node_id} ({field(node, 'class_type')}): "
                    f"{field(item, 'message')} {field(item, 'details') or ''}".strip()
                )
    return ErrorDetail(str(field(error, "type") or ""), "; ".join(part for part in parts if part)
                       or response.reason_phrase)


def create_engine(settings: Settings) -> ComfyUIEngine:
    """The engine GENKEEP_ENGINE=comfyui names."""
    return ComfyUIEngine(settings)
