"""Alibaba Cloud DashScope (Model Studio): asynchronous image synthesis, submitted then polled.

- CREATE: a wan text-to-image model; with reference images, a wan image-to-image model that fuses them.
- WHITE_BACKGROUND: the wan image-edit model with a prompt template.
- CLOTHING_CHANGE: the OutfitAnyone virtual try-on model (aitryon): person image and top garment.

DashScope fetches the reference images itself, from the short-lived signed URLs genkeep serves when it has a
public base URL (GENKEEP_PUBLIC_BASE_URL). Result URLs expire after 24 hours, so the result is downloaded at once.
"""

from __future__ import annotations

from typing import Any

import httpx

from genkeep.config import Settings, SettingsError
from genkeep.engines.base import EngineContext, EngineError, EngineJob, EngineResult, SubmitPollEngine
from genkeep.engines.prompts import render, template_for
from genkeep.engines.provider_http import (
    ErrorDetail,
    Provider,
    ResultLinks,
    download_image,
    field,
    plain_code,
    poll,
    send,
    send_json,
)
from genkeep.tasks.model import TaskType

PREFIX = "GENKEEP_DASHSCOPE_"

TEXT_TO_IMAGE = "services/aigc/text2image/image-synthesis"
IMAGE_TO_IMAGE = "services/aigc/image2image/image-synthesis"
# The wan image-to-image models fuse at most this many input images.
MAX_FUSED_IMAGES = 3

# Polling: DashScope jobs take from seconds to a few minutes; its query API allows 20 requests a second.
FIRST_POLL_DELAY = 1.0
POLL_BACKOFF = 1.5
MAX_POLL_DELAY = 5.0

PROVIDER = Provider(
    "DashScope",
    url_setting=f"{PREFIX}BASE_URL",
    timeout_setting=f"{PREFIX}TIMEOUT",
    key_setting=f"{PREFIX}API_KEY",
)


def models(settings: Settings) -> dict[str, str]:
    """DashScope's model for each use, as configured."""
    return {"CREATE_MODEL": settings.dashscope_create_model.strip(),
            "REFERENCE_MODEL": settings.dashscope_reference_model.strip(),
            "WHITE_BACKGROUND_MODEL": settings.dashscope_white_background_model.strip(),
            "CLOTHING_CHANGE_MODEL": settings.dashscope_clothing_change_model.strip()}


class DashScopeEngine(SubmitPollEngine):
    """Makes images with DashScope's asynchronous image-synthesis API."""

    name = "dashscope"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        api_key = settings.dashscope_api_key.strip()
        if not api_key:
            raise SettingsError(f"{PREFIX}API_KEY is not set: GENKEEP_ENGINE=dashscope needs an API key.")
        self.models = models(settings)
        self.size = settings.dashscope_size.strip()
        timeout = settings.dashscope_timeout
        headers = {"Authorization": f"Bearer {api_key}"}
        workspace = settings.dashscope_workspace.strip()
        if workspace:
            headers["X-DashScope-WorkSpace"] = workspace
        base_url = settings.dashscope_base_url.strip().rstrip("/") + "/"
        self._api = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)
        # Result URLs are pre-signed object-storage URLs: they must not carry genkeep's API key. Redirects are
        # followed by download_image, which checks every hop.
        self._downloads = httpx.Client(timeout=timeout, follow_redirects=False)
        self._links = ResultLinks(base_url)

    def submit(self, job: EngineJob, ctx: EngineContext) -> str:
        """Create the DashScope task and return its task_id."""
        path, body = self._request(job)
        ctx.check()
        answer = send_json(
            self._api, PROVIDER, "POST", path, json=body,
            headers={"X-DashScope-Async": "enable"}, read_error=_read_error,
        )
        task_id = field(answer, "output", "task_id")
        if not isinstance(task_id, str) or not task_id:
            raise PROVIDER.malformed("a task submission answer without output.task_id")
        ctx.report_progress(0.05)
        return task_id

    def wait(self, job: EngineJob, provider_job_id: str, ctx: EngineContext) -> EngineResult:
        """Poll the task with backoff until it ends; download its image."""
        result = poll(ctx, lambda: self._look(provider_job_id, ctx), first_delay=FIRST_POLL_DELAY,
                      max_delay=MAX_POLL_DELAY, backoff=POLL_BACKOFF)
        ctx.check()
        return result

    def _look(self, task_id: str, ctx: EngineContext) -> EngineResult | None:
        """The image once the task succeeded (downloaded inside the poll, so a failed download is retried)."""
        answer = send_json(self._api, PROVIDER, "GET", f"tasks/{task_id}", read_error=_read_error)
        output = field(answer, "output")
        status = field(output, "task_status")
        if status == "SUCCEEDED":
            ctx.report_progress(0.9)
            return download_image(self._downloads, PROVIDER, _result_url(output), self._links)
        if status in ("FAILED", "UNKNOWN", "CANCELED"):
            raise _job_error(status, output)
        if status not in ("PENDING", "RUNNING"):
            raise PROVIDER.malformed(f"a task status of {plain_code(status) or 'an unknown kind'}")
        ctx.report_progress(0.5 if status == "RUNNING" else 0.1)
        return None

    def _request(self, job: EngineJob) -> tuple[str, dict[str, Any]]:
        """The service path and JSON body that start this task's job."""
        urls = list(job.reference_urls)
        if job.reference_paths and len(urls) < len(job.reference_paths):
            raise EngineError(
                "provider_unavailable",
                "DashScope downloads the reference images from genkeep, so genkeep needs an address "
                "reachable from the internet: set GENKEEP_PUBLIC_BASE_URL.",
            )
        prompt = render(template_for(self.settings, self.name, job.type), job.prompt)
        if job.type is TaskType.CLOTHING_CHANGE:
            # The try-on model takes no prompt: the person and the garment say it all.
            return IMAGE_TO_IMAGE, {
                "model": self.models["CLOTHING_CHANGE_MODEL"],
                "input": {"person_image_url": urls[0], "top_garment_url": urls[1]},
                "parameters": {"resolution": -1, "restore_face": True},
            }
        if job.type is TaskType.WHITE_BACKGROUND:
            model = self.models["WHITE_BACKGROUND_MODEL"]
            edit = _edit_input(model, prompt, urls[:1])
            return IMAGE_TO_IMAGE, {"model": model, "input": edit, "parameters": {"n": 1}}
        if urls:
            model = self.models["REFERENCE_MODEL"]
            edit = _edit_input(model, prompt, urls[:MAX_FUSED_IMAGES])
            return IMAGE_TO_IMAGE, {"model": model, "input": edit, "parameters": {"n": 1}}
        return TEXT_TO_IMAGE, {
            "model": self.models["CREATE_MODEL"],
            "input": {"prompt": prompt},
            "parameters": {"size": self.size, "n": 1},
        }

    def cancel(self, job: EngineJob, provider_job_id: str) -> None:
        """DashScope cancels jobs still waiting in its queue; a running job finishes and is simply not fetched."""
        send(self._api, PROVIDER, "POST", f"tasks/{provider_job_id}/cancel", read_error=_read_error)

    def close(self) -> None:
        """Release the HTTP connections."""
        self._api.close()
        self._downloads.close()


def _edit_input(model: str, prompt: str, urls: list[str]) -> dict[str, Any]:
    # wanx2.1-imageedit names its one image and its editing function; the wan2.5+ models take a list.
    if model.startswith("wanx2.1-imageedit"):
        return {"function": "description_edit", "prompt": prompt, "base_image_url": urls[0]}
    return {"prompt": prompt, "images": urls}


def _result_url(output: Any) -> str:
    # Image synthesis answers output.results[].url; the try-on model answers output.image_url.
    url = field(output, "results", 0, "url") or field(output, "image_url")
    if isinstance(url, str) and url:
        return url
    failed = field(output, "results", 0, "message")
    if isinstance(failed, str) and failed:
        raise PROVIDER.job_failed(ErrorDetail(str(field(output, "results", 0, "code") or ""), failed))
    raise PROVIDER.malformed("a finished task without an image URL")


def _job_error(status: str, output: Any) -> EngineError:
    if status == "UNKNOWN":
        return EngineError(
            "provider_error",
            "DashScope no longer knows this job (its task records last 24 hours); retry the task.",
        )
    if status == "CANCELED":
        return EngineError("provider_error", "The job was canceled at DashScope; retry the task.")
    code = str(field(output, "code") or "")
    detail = ErrorDetail(code, str(field(output, "message") or "no reason given"))
    if _is_content_refusal(code):
        return PROVIDER.refused_content(detail)
    return PROVIDER.job_failed(detail)


def _read_error(response: httpx.Response) -> ErrorDetail:
    """DashScope's error body: {"code": "InvalidApiKey", "message": "...", "request_id": "..."}."""
    try:
        body = response.json()
    except ValueError:
        body = None
    code = str(field(body, "code") or "")
    message = str(field(body, "message") or response.text.strip() or response.reason_phrase)
    return ErrorDetail(code, message, _is_content_refusal(code))


def _is_content_refusal(code: str) -> bool:
    # DataInspectionFailed / data_inspection_failed: the content filter refused the input or the output.
    # InvalidParameter.DataInspection is a media format the filter cannot read, not a refusal.
    return code.lower().replace("_", "") == "datainspectionfailed"


def create_engine(settings: Settings) -> DashScopeEngine:
    """The engine GENKEEP_ENGINE=dashscope names."""
    return DashScopeEngine(settings)
