"""What each type's engine is, said honestly to the people using it, in Chinese and English.

The pages show a type's note beside its form, and GET /api/engines gives front ends the same notes. A note is
read from the settings, without making the engine: an API-only process runs no engine but still tells its users
which one will run their tasks. Where the engine is a stand-in or an approximation, the note says so and points to
the README's "Connecting a real model".
"""

from __future__ import annotations

from dataclasses import dataclass

from genkeep.config import Settings
from genkeep.engines import BUILTIN_ENGINES, NO_ENGINE
from genkeep.tasks.model import TaskType

LANGUAGES = ("en", "zh-CN")
# Where a team reads how to connect a real model (a README section: the studio serves no documentation pages).
GUIDE = "README.md#connecting-a-real-model"
CONNECT_A_MODEL = {
    "en": "To get real AI images, connect an image model: see “Connecting a real model” in genkeep's README.",
    "zh-CN": "要生成真正的 AI 图片，请接入图像模型：见 genkeep README 中的“Connecting a real model”一节。",
}

# Sentences per kind of engine; {model}, {workflow} and {engine} are filled from the settings.
SENTENCES: dict[str, dict[str, str]] = {
    "offline_stand_in": {
        "en": "Made by genkeep's built-in offline stand-in, which is not an AI model: it paints a procedural "
              "picture whose colours and layout follow your prompt's words, so it will not show what you describe.",
        "zh-CN": "由 genkeep 内置的离线替身生成，它不是 AI 模型：它按提示词中的词语决定配色和构图，画出一幅程序生成"
                 "的图，不会画出你描述的内容。",
    },
    "offline_cutout": {
        "en": "Made offline on this server: a small cut-out model (u2netp) finds the product and puts it on pure "
              "white with a soft shadow; the product itself is not redrawn.",
        "zh-CN": "在本服务器上离线生成：一个小型抠图模型（u2netp）找出商品，放到纯白背景上并加上柔和的阴影；"
                 "商品本身不会被重新绘制。",
    },
    "offline_approximation": {
        "en": "Made offline by a compositing approximation, not an AI try-on model: the garment is cut out, warped "
              "onto the person's torso and blended in, so fit and folds are only approximate.",
        "zh-CN": "由离线的图像合成近似生成，不是 AI 试衣模型：把服装抠出、变形贴到人物上身再融合，"
                 "贴合度和褶皱都只是近似。",
    },
    "hosted_model:openai": {
        "en": "Made by the hosted image model {model} (OpenAI Images API).",
        "zh-CN": "由托管图像模型 {model}（OpenAI Images API）生成。",
    },
    "hosted_model:dashscope": {
        "en": "Made by the hosted model {model} on Alibaba Cloud Model Studio (DashScope).",
        "zh-CN": "由阿里云百炼（DashScope）上的托管模型 {model} 生成。",
    },
    "self_hosted": {
        "en": "Made by your own ComfyUI server, with the workflow {workflow}.",
        "zh-CN": "由你自己的 ComfyUI 服务器按工作流 {workflow} 生成。",
    },
    "custom": {
        "en": "Made by the custom engine {engine}.",
        "zh-CN": "由自定义引擎 {engine} 生成。",
    },
    "elsewhere": {
        "en": "Made by genkeep workers on other machines; this server does not run this type itself.",
        "zh-CN": "由其他机器上的 genkeep 工作进程生成；本服务器自己不运行这一类型。",
    },
}

# What a seller reads beside the form, per kind: what they will get, in their words. The sentences above (engine,
# model, README) are for the people who run the studio and sit behind the page's "details".
FOR_SELLERS: dict[str, dict[str, str]] = {
    "offline_stand_in": {
        "en": "Sample mode: this studio has no AI model connected for this type yet. You get a sample picture "
              "(not an AI result) whose colours follow your words.",
        "zh-CN": "示例模式：这个类型还没有接入 AI 模型。你会得到一张示例图（不是 AI 结果），配色跟随你的描述。",
    },
    "offline_cutout": {
        "en": "Your product is cut out of its photo and placed on pure white with a soft shadow. The product itself "
              "is not redrawn.",
        "zh-CN": "商品会从照片中抠出，放到纯白背景上并加上柔和的阴影。商品本身不会被重新绘制。",
    },
    "offline_approximation": {
        "en": "Sample mode: this studio has no AI try-on model connected yet. You get a rough sample (not an AI "
              "result) with the garment laid over the person.",
        "zh-CN": "示例模式：还没有接入 AI 试衣模型。你会得到一张把服装叠在人物身上的粗略示例（不是 AI 结果）。",
    },
    "hosted_model": {"en": "An AI image model makes these pictures.", "zh-CN": "这些图片由 AI 图像模型生成。"},
    "self_hosted": {"en": "An AI image model makes these pictures.", "zh-CN": "这些图片由 AI 图像模型生成。"},
    "custom": {"en": "", "zh-CN": ""},
    "elsewhere": {"en": "", "zh-CN": ""},
}
# What the prompt changes, where the engine reads it.
PROMPT_EFFECT: dict[str, dict[str, str]] = {
    "offline_stand_in": {"en": "Your words choose the sample's colours and layout.",
                         "zh-CN": "你的描述决定示例图的配色和构图。"},
    "default": {"en": "The model follows what you write here.", "zh-CN": "模型会按你写的内容生成。"},
}

LOCAL_KINDS = {
    TaskType.CREATE: "offline_stand_in",
    TaskType.WHITE_BACKGROUND: "offline_cutout",
    TaskType.CLOTHING_CHANGE: "offline_approximation",
}
# Kinds whose note points to connecting a real model, and whose results are stand-ins: they show that the studio
# works, not what the seller asked for, so the pages mark them "sample, not an AI result".
STAND_INS = ("offline_stand_in", "offline_approximation")
# The built-in offline engines that make their picture from the photos alone: a prompt would change nothing.
PROMPT_UNREAD = ("offline_cutout", "offline_approximation")


@dataclass(frozen=True)
class EngineNote:
    """One type's engine, as its page and GET /api/engines describe it."""

    type: TaskType
    # The engine as configured (a built-in name, `module:factory`, or `none`).
    engine: str
    kind: str
    # The model the engine uses, when genkeep knows it.
    model: str | None
    # True for a generative image model; False for the offline engines; None when genkeep cannot tell.
    generative: bool | None
    text: dict[str, str]

    @property
    def connect_a_model(self) -> dict[str, str] | None:
        return CONNECT_A_MODEL if self.kind in STAND_INS else None

    @property
    def for_sellers(self) -> dict[str, str]:
        return FOR_SELLERS[self.kind]

    @property
    def prompt_effect(self) -> dict[str, str] | None:
        return PROMPT_EFFECT.get(self.kind, PROMPT_EFFECT["default"]) if self.reads_prompt else None

    @property
    def stand_in(self) -> bool:
        """Its results only show that the studio works: not what was asked for, not an AI result."""
        return self.kind in STAND_INS

    @property
    def reads_prompt(self) -> bool:
        """Whether the prompt changes its result (assumed for engines genkeep cannot look into)."""
        return self.kind not in PROMPT_UNREAD


def stand_in_engines() -> dict[str, list[str]]:
    """Per type, the engines whose results are stand-ins, whatever is configured now: a task keeps the name of
    the engine that made it, and its card must say what that engine was."""
    return {task_type.value: ["local"] if LOCAL_KINDS[task_type] in STAND_INS else [] for task_type in TaskType}


def _note(task_type: TaskType, engine: str, kind: str, generative: bool | None, model: str | None = None,
          workflow: str | None = None) -> EngineNote:
    sentences = SENTENCES[kind if kind in SENTENCES else f"{kind}:{engine}"]
    text = {lang: sentence.format(model=model, workflow=workflow, engine=engine)
            for lang, sentence in sentences.items()}
    return EngineNote(task_type, engine, kind.partition(":")[0], model, generative, text)


def _provider_model(settings: Settings, engine: str, task_type: TaskType) -> str:
    if engine == "openai":
        return settings.openai_model.strip()
    from genkeep.engines import dashscope

    models = dashscope.models(settings)
    if task_type is TaskType.CREATE:
        return f"{models['CREATE_MODEL']} / {models['REFERENCE_MODEL']}"
    return models[f"{task_type.value}_MODEL"]


def engine_note(settings: Settings, task_type: TaskType) -> EngineNote:
    engine = settings.engine_for(task_type.value)
    if engine == NO_ENGINE:
        return _note(task_type, engine, "elsewhere", None)
    if engine == "local":
        return _note(task_type, engine, LOCAL_KINDS[task_type], False)
    if engine in ("openai", "dashscope"):
        return _note(task_type, engine, "hosted_model", True, model=_provider_model(settings, engine, task_type))
    if engine == "comfyui":
        return _note(task_type, engine, "self_hosted", True, workflow=f"{task_type.value.lower()}.json")
    assert engine not in BUILTIN_ENGINES, f"no note for the built-in engine {engine}"
    return _note(task_type, engine, "custom", None)


def engine_notes(settings: Settings) -> dict[TaskType, EngineNote]:
    """Every type's note, in the types' order."""
    return {task_type: engine_note(settings, task_type) for task_type in TaskType}
