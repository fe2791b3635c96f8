"""A problem's `detail` in the language the client asks for with Accept-Language: Chinese or English.

The English sentence is written where the problem is raised; the Chinese one is here, named by the error's
`sentence` and filled with its `values`. Translating on the server (rather than in the page, by `code`) keeps one
list of sentences for every front end, and a client that asks for no language keeps the English it always had.
A problem without a Chinese sentence of its own gets its code's general one, never English on a Chinese page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from genkeep.errors import TaskManagerError

ZH = "zh-CN"

SENTENCES_ZH: dict[str, str] = {
    "file_too_large": "{image}超过 {megabytes} MB，请上传更小的文件。",
    "request_too_large": "这次上传的文件合计超过 {megabytes} MB，请上传更小的图片。",
    "image_empty": "{image}是空文件（0 字节），请重新选择图片。",
    "image_too_many_pixels": "{image}超过允许的 {megapixels} 百万像素，请缩小后重新上传。",
    "image_unsupported": "{image}不是 PNG、JPEG 或 WebP 图片，请导出为其中一种格式后再上传。",
    "image_too_small": "{image}只有 {width}×{height} 像素，请使用每边至少 {min_side} 像素的图片。",
    "image_undecodable": "{image}无法解码（文件已损坏或不完整），请重新导出。",
    "jpeg_scans": "{image}是分段过多的 JPEG，请另存为标准 JPEG 或 PNG 后再上传。",
    "owner_busy": "你已有 {cap} 个生成任务在进行中，请等其中一个完成，或取消一个。",
    "owner_line_full": "你已有 {running} 个生成任务在进行中，另有 {waiting} 个在排队，请等一些完成，或取消一些。",
    "studio_busy": "工作室正忙，暂时接不下更多生成任务，请过一分钟再试。",
    "prompt_too_long": "提示词有 {length} 个字符，请缩短到 {max} 个以内。",
    "prompt_control_characters": "提示词含有控制字符（例如 NUL），请删除后以纯文本发送。",
    "prompt_required": "请描述你想要的图片：创作需要填写提示词。",
    "image_count.CREATE": "创作最多可以带 4 张参考图；你发送了 {count} 张。",
    "image_count.WHITE_BACKGROUND": "白底图需要正好 1 张商品照片；你发送了 {count} 张。",
    "image_count.CLOTHING_CHANGE": "换装需要正好 2 张图片：先人物，后服装；你发送了 {count} 张。",
    "task_not_found": "找不到这个任务：它可能已被删除。",
    "cancel_finished": "这个任务已经结束，只能取消未完成的任务。",
    "retry_not_failed": "只有失败的任务才能重试。",
    "retry_images_gone": "这个任务的参考图已不存在，请重新开始一次生成。",
    "delete_unfinished": "任务仍在进行中：请先取消，再删除。",
    "nothing_to_download": "还没有可以下载的结果：这些任务都还没有完成。",
}

# A code's general sentence, for problems without a sentence of their own (mostly what only API clients meet).
CODES_ZH: dict[str, str] = {
    "invalid_input": "请求内容有误，请检查后重新发送。",
    "unsupported_image": "只接受 PNG、JPEG 或 WebP 图片。",
    "too_large": "上传的文件太大，请上传更小的图片。",
    "not_found": "这里什么都没有，请检查地址。",
    "wrong_state": "任务当前的状态不允许这样操作。",
    "too_many_unfinished": "进行中的生成任务太多，请稍后再试。",
    "unavailable": "工作室暂时无法处理，没有做任何更改，请稍后再试。",
    "database_unavailable": "任务数据库暂时没有响应，没有做任何更改，请几秒后再试。",
    "storage_unavailable": "图片存储暂时不可用（已满或无法连接），没有做任何更改，请几分钟后再试。",
    "not_ready": "工作室还没有准备好，请稍后再试。",
    "method_not_allowed": "这个地址不接受这种请求方式。",
    "internal": "服务器出了点问题，请稍后重试。",
}
GENERAL_ZH = "请求没有成功，请检查后重试。"

# The images as the English sentences name them (tasks/new_task.py's labels), as the Chinese pages name them.
_IMAGES_ZH = {"The product photo": "商品照片", "The person photo": "人物照片", "The garment photo": "服装照片"}
_REFERENCE = re.compile(r"Reference image (\d+)")


def _image_zh(label: object) -> str:
    text = str(label)
    if text in _IMAGES_ZH:
        return _IMAGES_ZH[text]
    numbered = _REFERENCE.fullmatch(text)
    return f"参考图 {numbered.group(1)} " if numbered else text


def wants_chinese(accept_language: str | None) -> bool:
    """Chinese when the client ranks it above English; nothing asked (most API clients) is English."""
    from genkeep.web.pages import choose_language

    return choose_language(None, accept_language) == ZH


def detail_zh(code: str, sentence: str | None = None, values: Mapping[str, object] | None = None) -> str:
    template = SENTENCES_ZH.get(sentence or "")
    if template is None:
        return CODES_ZH.get(code, GENERAL_ZH)
    filled = dict(values or {})
    if "image" in filled:
        filled["image"] = _image_zh(filled["image"])
    return template.format(**filled)


def localized_detail(error: TaskManagerError, accept_language: str | None) -> str:
    if not wants_chinese(accept_language):
        return error.detail
    return detail_zh(error.code, error.sentence, error.values)
