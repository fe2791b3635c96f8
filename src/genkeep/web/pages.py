"""The studio's pages: the home page and one page per generation type, in Chinese or English.

Pages are server-rendered; all behaviour lives in plain ES modules under static/ (no build step, no CDN, so the
studio works offline). Every string a person reads is in STRINGS, once: templates read it directly and the same
dictionary reaches the scripts as a JSON script tag, so the two can never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.responses import Response
from starlette.types import Scope

from genkeep.config import Settings
from genkeep.engines.notes import stand_in_engines
from genkeep.reference_images import ACCEPTED_FORMATS
from genkeep.tasks.model import IMAGE_COUNTS, TaskType
from genkeep.web.contract import DOWNLOAD_IDS_MAX

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES_DIR = WEB_DIR / "templates"

LANG_COOKIE = "genkeep_lang"
LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "en"
DEFAULT_MAX_PROMPT_CHARS = 2000
# What the file pickers offer and the page checks a dropped file against: the formats the server accepts.
ACCEPTED_IMAGE_TYPES = [media_type for media_type, _ in ACCEPTED_FORMATS.values()]


@dataclass(frozen=True)
class TypePage:
    """One generation type's page: where it lives and how its form asks for images."""

    type: TaskType
    path: str
    slug: str
    prompt_required: bool


TYPE_PAGES = (
    TypePage(TaskType.CREATE, "/create", "create", prompt_required=True),
    TypePage(TaskType.WHITE_BACKGROUND, "/white-background", "white-background", prompt_required=False),
    TypePage(TaskType.CLOTHING_CHANGE, "/clothing-change", "clothing-change", prompt_required=False),
)

# Keys are the same in both languages (checked at import). {name} placeholders are filled by i18n.js.
STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "app.name": "genkeep",
        "app.tagline": "AI product images that keep going, even when you close the tab.",
        "skip": "Skip to content",
        "nav.label": "Generation types",
        "nav.home": "Home",
        "lang.label": "Language",
        "lang.en": "English",
        "lang.zh-CN": "中文",
        "type.CREATE": "Create",
        "type.CREATE.desc": "Describe the picture you want; add reference images to guide style or product.",
        "type.CREATE.cta": "Create an image",
        "type.WHITE_BACKGROUND": "White background",
        "type.WHITE_BACKGROUND.desc": "Turn one product photo into a clean listing shot on pure white.",
        "type.WHITE_BACKGROUND.cta": "Clean up a photo",
        "type.CLOTHING_CHANGE": "Clothing change",
        "type.CLOTHING_CHANGE.desc": "Show your garment worn by a model: one photo of the person, one of the garment.",
        "type.CLOTHING_CHANGE.cta": "Dress a model",
        "home.title": "What would you like to make?",
        "home.lede": "Start a generation and go on working: refresh, switch pages or come back later, "
                     "your images keep coming.",
        "home.recent": "Recent results",
        "home.recent_empty": "Your finished images will appear here.",
        "home.recent_error": "Recent results could not be loaded.",
        "home.busy": "{count} generating",
        "form.title": "New generation",
        "form.prompt": "Prompt",
        "form.prompt_optional": "Prompt (optional)",
        "form.prompt_placeholder.CREATE": "e.g. A ceramic mug on a sunlit oak table, soft morning light",
        "form.prompt_placeholder.WHITE_BACKGROUND": "e.g. Keep the soft shadow under the product",
        "form.prompt_placeholder.CLOTHING_CHANGE": "e.g. Tuck the shirt in, keep the original pose",
        "form.counter": "{count} / {max}",
        "form.references": "Reference images (optional)",
        "form.references_hint": "Up to {max} images · PNG, JPEG or WebP",
        "form.product": "Product photo",
        "form.product_hint": "One photo of the product · PNG, JPEG or WebP",
        "form.person": "Person",
        "form.person_hint": "A photo of the model",
        "form.garment": "Garment",
        "form.garment_hint": "A photo of the clothing item",
        "form.drop": "Drop an image here, or choose a file",
        "form.drop_short": "Add image",
        "form.choose": "Choose file",
        "form.remove": "Remove {name}",
        "form.submit": "Generate",
        "form.submitting": "Starting…",
        "form.error.prompt_required": "Write a prompt first: describe the image you want.",
        "form.error.prompt_too_long": "The prompt is too long: keep it to {max} characters.",
        "form.error.too_many": "Up to {max} reference images; remove some first.",
        "form.error.need_product": "Add a photo of the product.",
        "form.error.need_person": "Add a photo of the person.",
        "form.error.need_garment": "Add a photo of the garment.",
        "form.error.format": "{name} is not a PNG, JPEG or WebP image.",
        "form.error.network": "The studio is not answering right now; nothing was sent. Try again in a moment.",
        "form.error.unknown": "Something went wrong. Try again in a moment.",
        "progress.title": "In progress",
        "progress.empty": "Nothing is generating right now. Finished images move to the history below.",
        "status.pending": "Waiting to start",
        "status.processing": "Generating",
        "status.completed": "Done",
        "status.failed": "Failed",
        "card.elapsed": "Running for {time}",
        "card.busy": "Generating, please wait",
        "card.cancel": "Cancel",
        "card.download": "Download",
        "card.open": "Open full size",
        "card.retry": "Try again",
        "card.delete": "Delete",
        "card.references": "Reference images",
        "card.reference": "Reference image {n}",
        "card.no_prompt": "No prompt",
        "card.failed_title": "This generation failed",
        "card.details": "See the details",
        "card.use_as": "Use in a new generation",
        "card.engine": "by {engine}",
        "engine.label": "Engine: {engine}.",
        "form.reference": "Reference image",
        "viewer.close": "Close",
        "viewer.previous": "Previous",
        "viewer.next": "Next",
        "viewer.position": "{n} of {count}",
        "viewer.zoom_in": "Zoom in",
        "viewer.zoom_out": "Zoom out",
        "viewer.zoom_level": "Zoom {percent}%",
        "viewer.zoom_actual": "Show at 100%",
        "viewer.zoom_fit": "Fit to the screen",
        "viewer.compare": "Compare",
        "viewer.compare_with": "Compare with",
        "viewer.before": "Before",
        "viewer.after": "After",
        "viewer.divider": "Before and after divider",
        "viewer.divider_value": "{before}% before, {after}% after",
        "viewer.loading": "Loading the image",
        "viewer.engine": "Engine",
        "viewer.size": "Size",
        "viewer.size_value": "{width} × {height} px",
        "viewer.made": "Made",
        "viewer.took": "Took",
        "viewer.ended": "Ended",
        "viewer.keys": "Keys: ← → browse · + − 0 1 zoom · C compare · Esc close",
        "use_as.title": "Use in a new generation",
        "use_as.product": "Use as product photo",
        "use_as.person": "Use as person",
        "use_as.garment": "Use as garment",
        "use_as.reference": "Use as reference",
        "use_as.added": "Added from your result: {slot}.",
        "use_as.gone": "That result's image is no longer available; choose a file instead.",
        "history.title": "History",
        "history.empty": "No finished images yet. Start one with the form.",
        "form.file_limits": "up to {megabytes} MB each",
        "form.prompt_unread": "No prompt needed: this type works from your photos alone.",
        "form.error.not_image": "{name} could not be opened as an image; choose a PNG, JPEG or WebP photo.",
        "form.error.file_too_large": "{name} is {size} MB; each image can be up to {max} MB.",
        "form.error.too_small": "{name} is only {width}×{height} pixels; use an image at least {min} pixels on "
                                "each side.",
        "form.error.too_many_pixels": "{name} has more than {max} megapixels; make it smaller first.",
        "status.waiting": "Waiting for a free worker",
        "status.queued": "Waiting its turn",
        "card.select": "Select {name}",
        "form.product_hint_many": "One product photo, or many at once (a whole folder too) · PNG, JPEG or WebP",
        "form.variations": "Variations",
        "form.variations_hint": "How many images to make from this prompt and these references, as one batch.",
        "form.submit_many": "Generate {count}",
        "batch.picked_label": "Photos for one batch",
        "batch.picked": "{count} photos · {size} MB",
        "batch.remove_all": "Remove all",
        "batch.too_many": "Up to {max} photos at a time: the first {max} are kept.",
        "batch.skipped": "{count} file(s) skipped: not PNG, JPEG or WebP images.",
        "batch.title": "Batch of {count}",
        "batch.counts": "{done} done · {failed} failed · {waiting} waiting · {running} running",
        "batch.uploading": "Uploading {sent} of {total} · {mb} of {total_mb} MB",
        "batch.upload_paused": "Upload paused while the studio is busy; trying again in {time}.",
        "batch.refused": "{count} not accepted",
        "batch.took": "Took {time}",
        "batch.progress": "Batch progress",
        "batch.show": "Show the photos",
        "batch.download": "Download all (ZIP)",
        "batch.stop": "Stop uploading",
        "batch.row_unsent": "Waiting to upload",
        "batch.row_refused": "Not accepted: {detail}",
        "select.toolbar": "Selected images",
        "select.count": "{count} selected",
        "select.download": "Download",
        "select.delete": "Delete",
        "select.clear": "Clear",
        "select.zip_limit": "A ZIP holds up to {max} images: select fewer to download them.",
        "confirm.delete_many_title": "Delete {count} images?",
        "confirm.delete_many_body": "They are removed from your history, with their reference images. This cannot "
                                    "be undone.",
        "announce.deleting": "Deleting {n} of {count}…",
        "announce.deleted_many": "{count} deleted.",
        "announce.delete_some_failed": "{count} could not be deleted: {detail}",
        "announce.batch_started": "{count} photos queued; uploading.",
        "announce.batch_done": "Batch finished: {done} ready, {failed} failed.",
        "announce.uploads_resumed": "Resuming {count} upload(s).",
        "announce.photo_refused": "{name} was not accepted: {detail}",
        "status.restarted": "Restarted after an interruption",
        "status.canceled": "Canceled",
        "card.waited": "Waiting for {time}",
        "card.canceled_title": "You canceled this generation",
        "card.stand_in": "Sample, not an AI result",
        "card.stand_in_file": "sample-not-an-AI-result",
        "note.cut_by_frame": "The product runs off the photo's edge, so part of it may be missing: for a whole "
                             "product, use a photo with space around it.",
        "engine.details": "Details for the studio's operators",
        "time.limit_minutes": "{m} minutes",
        "time.limit_seconds": "{s} seconds",
        "history.more": "Load more",
        "history.loading": "Loading…",
        "history.error": "History could not be loaded.",
        "history.retry_load": "Try again",
        "confirm.delete_title": "Delete this image?",
        "confirm.delete_body": "It is removed from your history, with its reference images. This cannot be undone.",
        "confirm.delete": "Delete",
        "confirm.keep": "Keep it",
        "announce.started": "Generation started.",
        "announce.recovered": "{count} generation(s) still in progress.",
        "announce.completed": "Image ready: {prompt}",
        "announce.failed": "Generation failed: {message}",
        "announce.deleted": "Deleted from history.",
        "announce.reconnecting": "Connection lost. Reconnecting; your generations keep running.",
        "announce.reconnected": "Connected again.",
        "connection.reconnecting": "Reconnecting… your generations keep running on the server.",
        "alt.result": "Generated image: {prompt}",
        "alt.result_untitled": "Generated image ({type})",
        "alt.preview": "Preview of the image being generated (not the final result)",
        "time.seconds": "{s}s",
        "time.minutes": "{m}m {s}s",
        # Empty: English pages show the server's own sentence for these codes.
        "task_error.timeout": "",
        "task_error.canceled": "",
        "task_error.timeout_limit": "",  # the server's sentence names the limit already
    },
    "zh-CN": {
        "app.name": "genkeep",
        "app.tagline": "AI 商品图，关掉页面也不会中断。",
        "skip": "跳到主要内容",
        "nav.label": "生成类型",
        "nav.home": "首页",
        "lang.label": "语言",
        "lang.en": "English",
        "lang.zh-CN": "中文",
        "type.CREATE": "创作",
        "type.CREATE.desc": "描述你想要的画面，可添加参考图来引导风格或商品。",
        "type.CREATE.cta": "开始创作",
        "type.WHITE_BACKGROUND": "白底图",
        "type.WHITE_BACKGROUND.desc": "把一张商品照片变成纯白背景的电商主图。",
        "type.WHITE_BACKGROUND.cta": "生成白底图",
        "type.CLOTHING_CHANGE": "换装",
        "type.CLOTHING_CHANGE.desc": "让模特穿上你的服装：一张人物照片，一张服装照片。",
        "type.CLOTHING_CHANGE.cta": "给模特换装",
        "home.title": "今天想做什么图？",
        "home.lede": "开始生成后可以继续做别的：刷新、切换页面或稍后回来，图片都会照常生成。",
        "home.recent": "最近的作品",
        "home.recent_empty": "完成的图片会显示在这里。",
        "home.recent_error": "无法加载最近的作品。",
        "home.busy": "{count} 个生成中",
        "form.title": "新建生成",
        "form.prompt": "提示词",
        "form.prompt_optional": "提示词（可选）",
        "form.prompt_placeholder.CREATE": "例如：阳光下橡木桌上的陶瓷杯，柔和的晨光",
        "form.prompt_placeholder.WHITE_BACKGROUND": "例如：保留商品下方的柔和阴影",
        "form.prompt_placeholder.CLOTHING_CHANGE": "例如：衬衫扎进裤子里，保持原来的姿势",
        "form.counter": "{count} / {max}",
        "form.references": "参考图（可选）",
        "form.references_hint": "最多 {max} 张 · PNG、JPEG 或 WebP",
        "form.product": "商品照片",
        "form.product_hint": "一张商品照片 · PNG、JPEG 或 WebP",
        "form.person": "人物",
        "form.person_hint": "模特的照片",
        "form.garment": "服装",
        "form.garment_hint": "服装单品的照片",
        "form.drop": "把图片拖到这里，或选择文件",
        "form.drop_short": "添加图片",
        "form.choose": "选择文件",
        "form.remove": "移除 {name}",
        "form.submit": "开始生成",
        "form.submitting": "正在提交…",
        "form.error.prompt_required": "请先填写提示词，描述你想要的图片。",
        "form.error.prompt_too_long": "提示词太长了，请控制在 {max} 个字符以内。",
        "form.error.too_many": "参考图最多 {max} 张，请先移除一些。",
        "form.error.need_product": "请添加一张商品照片。",
        "form.error.need_person": "请添加一张人物照片。",
        "form.error.need_garment": "请添加一张服装照片。",
        "form.error.format": "{name} 不是 PNG、JPEG 或 WebP 图片。",
        "form.error.network": "工作室暂时没有响应，什么都没有发送。请稍后再试。",
        "form.error.unknown": "出了点问题，请稍后重试。",
        "progress.title": "生成中",
        "progress.empty": "当前没有正在生成的任务。完成的图片会移到下方的历史记录。",
        "status.pending": "等待开始",
        "status.processing": "生成中",
        "status.completed": "已完成",
        "status.failed": "失败",
        "card.elapsed": "已用时 {time}",
        "card.busy": "正在生成，请稍候",
        "card.cancel": "取消",
        "card.download": "下载",
        "card.open": "查看大图",
        "card.retry": "重试",
        "card.delete": "删除",
        "card.references": "参考图",
        "card.reference": "参考图 {n}",
        "card.no_prompt": "无提示词",
        "card.failed_title": "生成失败",
        "card.details": "查看详情",
        "card.use_as": "用于新的生成",
        "card.engine": "由 {engine} 生成",
        "engine.label": "引擎：{engine}。",
        "form.reference": "参考图",
        "viewer.close": "关闭",
        "viewer.previous": "上一张",
        "viewer.next": "下一张",
        "viewer.position": "第 {n} 张，共 {count} 张",
        "viewer.zoom_in": "放大",
        "viewer.zoom_out": "缩小",
        "viewer.zoom_level": "缩放 {percent}%",
        "viewer.zoom_actual": "以 100% 显示",
        "viewer.zoom_fit": "适应屏幕",
        "viewer.compare": "对比",
        "viewer.compare_with": "对比图",
        "viewer.before": "原图",
        "viewer.after": "结果",
        "viewer.divider": "原图与结果分界线",
        "viewer.divider_value": "原图 {before}%，结果 {after}%",
        "viewer.loading": "正在加载图片",
        "viewer.engine": "引擎",
        "viewer.size": "尺寸",
        "viewer.size_value": "{width} × {height} 像素",
        "viewer.made": "生成于",
        "viewer.took": "用时",
        "viewer.ended": "结束于",
        "viewer.keys": "快捷键：← → 切换 · + − 0 1 缩放 · C 对比 · Esc 关闭",
        "use_as.title": "用于新的生成",
        "use_as.product": "用作商品照片",
        "use_as.person": "用作人物",
        "use_as.garment": "用作服装",
        "use_as.reference": "用作参考图",
        "use_as.added": "已从结果添加：{slot}。",
        "use_as.gone": "该结果的图片已不存在，请改为选择文件。",
        "history.title": "历史记录",
        "history.empty": "还没有完成的图片，用生成表单开始吧。",
        "form.file_limits": "每张最大 {megabytes} MB",
        "form.prompt_unread": "无需提示词：这个类型只根据你的照片生成。",
        "form.error.not_image": "{name} 无法作为图片打开，请选择 PNG、JPEG 或 WebP 照片。",
        "form.error.file_too_large": "{name} 有 {size} MB，每张图片最大 {max} MB。",
        "form.error.too_small": "{name} 只有 {width}×{height} 像素，请使用每边至少 {min} 像素的图片。",
        "form.error.too_many_pixels": "{name} 超过 {max} 百万像素，请先缩小。",
        "status.waiting": "排队中，等待空闲的生成进程",
        "status.queued": "排队等候中",
        "card.select": "选择 {name}",
        "form.product_hint_many": "一张商品照片，或一次多张（也可以拖入整个文件夹） · PNG、JPEG 或 WebP",
        "form.variations": "变体数量",
        "form.variations_hint": "用这段提示词和参考图生成几张，作为一批。",
        "form.submit_many": "生成 {count} 张",
        "batch.picked_label": "本批照片",
        "batch.picked": "{count} 张照片 · {size} MB",
        "batch.remove_all": "全部移除",
        "batch.too_many": "一次最多 {max} 张照片：已保留前 {max} 张。",
        "batch.skipped": "已跳过 {count} 个文件：不是 PNG、JPEG 或 WebP 图片。",
        "batch.title": "一批 {count} 张",
        "batch.counts": "已完成 {done} · 失败 {failed} · 排队 {waiting} · 生成中 {running}",
        "batch.uploading": "正在上传 {sent}/{total} 张 · {mb}/{total_mb} MB",
        "batch.upload_paused": "工作室繁忙，上传已暂停；{time} 后重试。",
        "batch.refused": "{count} 张未被接受",
        "batch.took": "用时 {time}",
        "batch.progress": "批次进度",
        "batch.show": "查看这批照片",
        "batch.download": "全部下载（ZIP）",
        "batch.stop": "停止上传",
        "batch.row_unsent": "等待上传",
        "batch.row_refused": "未被接受：{detail}",
        "select.toolbar": "已选图片",
        "select.count": "已选 {count} 项",
        "select.download": "下载",
        "select.delete": "删除",
        "select.clear": "清除选择",
        "select.zip_limit": "一个 ZIP 最多 {max} 张图片：请少选一些再下载。",
        "confirm.delete_many_title": "删除 {count} 张图片？",
        "confirm.delete_many_body": "它们和各自的参考图会从历史记录中移除，且无法恢复。",
        "announce.deleting": "正在删除 {n}/{count}…",
        "announce.deleted_many": "已删除 {count} 张。",
        "announce.delete_some_failed": "{count} 张无法删除：{detail}",
        "announce.batch_started": "已加入 {count} 张照片，正在上传。",
        "announce.batch_done": "这批已完成：{done} 张成功，{failed} 张失败。",
        "announce.uploads_resumed": "继续上传 {count} 张照片。",
        "announce.photo_refused": "{name} 未被接受：{detail}",
        "status.restarted": "中断后已重新开始",
        "status.canceled": "已取消",
        "card.waited": "已等待 {time}",
        "card.canceled_title": "你取消了这次生成",
        "card.stand_in": "示例图，不是 AI 结果",
        "card.stand_in_file": "示例图-非AI结果",
        "note.cut_by_frame": "商品超出了照片边缘，结果中可能缺少一部分：想要完整的商品，请换一张四周留有空白的照片。",
        "engine.details": "给工作室运维人员的详细信息",
        "time.limit_minutes": "{m} 分钟",
        "time.limit_seconds": "{s} 秒",
        "history.more": "加载更多",
        "history.loading": "正在加载…",
        "history.error": "无法加载历史记录。",
        "history.retry_load": "重试",
        "confirm.delete_title": "删除这张图片？",
        "confirm.delete_body": "它和它的参考图会从历史记录中移除，且无法恢复。",
        "confirm.delete": "删除",
        "confirm.keep": "保留",
        "announce.started": "已开始生成。",
        "announce.recovered": "有 {count} 个任务仍在生成中。",
        "announce.completed": "图片已生成：{prompt}",
        "announce.failed": "生成失败：{message}",
        "announce.deleted": "已从历史记录中删除。",
        "announce.reconnecting": "连接中断，正在重新连接；生成任务仍在继续。",
        "announce.reconnected": "已重新连接。",
        "connection.reconnecting": "正在重新连接… 你的生成任务仍在服务器上继续。",
        "alt.result": "生成的图片：{prompt}",
        "alt.result_untitled": "生成的图片（{type}）",
        "alt.preview": "正在生成的图片预览（非最终结果）",
        "time.seconds": "{s} 秒",
        "time.minutes": "{m} 分 {s} 秒",
        # The server's error messages are English sentences; these say the same for the common codes.
        "task_error.timeout": "",
        "task_error.canceled": "已取消。",
        "task_error.timeout_limit": "生成超时（超过 {limit}），已停止。请重试。",
    },
}

if set(STRINGS["en"]) != set(STRINGS["zh-CN"]):  # pragma: no cover - a translation slip, caught on import
    missing = set(STRINGS["en"]) ^ set(STRINGS["zh-CN"])
    raise RuntimeError(f"STRINGS differ between languages: {sorted(missing)}")


def choose_language(cookie: str | None, accept_language: str | None) -> str:
    """The page language: the remembered switch, else the browser's preference, else English."""
    if cookie in LANGUAGES:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, position, tag.lower()))
    for _, _, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


def _script_json(value: object) -> str:
    # Inside <script>, "</" would end the element early; \u003c keeps the JSON identical once parsed.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def _max_prompt_chars(request: Request) -> int:
    studio = getattr(request.app.state, "studio", None)
    settings = getattr(studio, "settings", None)
    return int(getattr(settings, "max_prompt_chars", DEFAULT_MAX_PROMPT_CHARS))


def _limits(request: Request) -> dict[str, int]:
    """The server's checks on a photo and a task, which the page repeats at once (the server still checks)."""
    settings = getattr(getattr(request.app.state, "studio", None), "settings", None) or Settings()
    return {"maxUploadBytes": settings.max_upload_bytes, "maxImagePixels": settings.max_image_pixels,
            "minImageSide": settings.min_image_side, "taskTimeoutSeconds": round(settings.task_timeout)}


# Tasks one CREATE makes from the same prompt and references ("Variations").
MAX_VARIATIONS = 4


def _batch_limits(request: Request) -> dict[str, int]:
    """The most photos one drop may hold (the owner's running limit plus their line: more would only wait for a 429
    in the upload queue) and the most tasks one download may name."""
    settings = getattr(getattr(request.app.state, "studio", None), "settings", None) or Settings()
    return {"maxBatchFiles": settings.max_unfinished_per_owner + settings.max_waiting_per_owner,
            "maxZipIds": DOWNLOAD_IDS_MAX, "maxVariations": MAX_VARIATIONS}


def megabytes(count: int) -> str:
    """15 for 15 MiB, 0.5 for half of one: as the size limit is written beside a photo's slot."""
    return f"{count / (1024 * 1024):.3g}"


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
router = APIRouter(include_in_schema=False)


def _render(request: Request, template: str, *, title: str, page: TypePage | None, **extra: Any) -> Response:
    lang = choose_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
    strings = STRINGS[lang]
    limits = _limits(request)
    config = {
        "lang": lang,
        "type": page.type.value if page else None,
        "maxPromptChars": _max_prompt_chars(request),
        "imageCounts": {kind.value: list(counts) for kind, counts in IMAGE_COUNTS.items()},
        "acceptedTypes": ACCEPTED_IMAGE_TYPES,
        "typePaths": {p.type.value: p.path for p in TYPE_PAGES},
        "langCookie": LANG_COOKIE,
        **limits,
        **_batch_limits(request),
        "standIns": stand_in_engines(),
    }
    notes = getattr(request.app.state, "engine_notes", None) or {}
    note = notes.get(page.type) if page else None
    config["readsPrompt"] = note.reads_prompt if note else True
    context = {
        "engine_note": note,
        "file_limits": strings["form.file_limits"].replace("{megabytes}", megabytes(limits["maxUploadBytes"])),
        "lang": lang,
        "languages": LANGUAGES,
        "t": strings,
        "title": title,
        "page": page,
        "type_pages": TYPE_PAGES,
        "accepted_types": ",".join(ACCEPTED_IMAGE_TYPES),
        "max_prompt_chars": config["maxPromptChars"],
        "max_variations": config["maxVariations"],
        "strings_json": _script_json(strings),
        "config_json": _script_json(config),
        **extra,
    }
    response = templates.TemplateResponse(request, template, context)
    # The language can change with a cookie, so a cache must not hand one language to the other.
    response.headers["Vary"] = "Accept-Language, Cookie"
    response.headers["Cache-Control"] = "no-cache"
    return response


# HEAD too (uptime monitors ask with it); Starlette sends the GET answer's headers without its body.
PAGE_METHODS = ["GET", "HEAD"]


@router.api_route("/", methods=PAGE_METHODS, response_class=HTMLResponse)
def home(request: Request) -> Response:
    """The three generation types, with the owner's recent results."""
    lang = choose_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
    return _render(request, "home.html", title=STRINGS[lang]["app.tagline"], page=None)


def _type_page(page: TypePage) -> Callable[[Request], Response]:
    def show(request: Request) -> Response:
        lang = choose_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
        return _render(request, "studio.html", title=STRINGS[lang][f"type.{page.type.value}"], page=page)

    show.__name__ = f"page_{page.slug.replace('-', '_')}"
    show.__doc__ = f"The {page.type.value} page: its form, its tasks in progress and its history."
    return show


for _page in TYPE_PAGES:
    router.add_api_route(_page.path, _type_page(_page), methods=PAGE_METHODS, response_class=HTMLResponse)


class _RevalidatedStaticFiles(StaticFiles):
    """Static files that browsers revalidate on each load (a cheap 304): without a build step there are no
    hashed file names, and a stale recovery.js next to a fresh page would be worse than one round trip."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def mount_static(app: FastAPI) -> None:
    """Serve the pages' scripts, styles and icons at /static."""
    app.mount("/static", _RevalidatedStaticFiles(directory=str(STATIC_DIR)), name="static")
