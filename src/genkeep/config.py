"""Settings, read once from the environment (GENKEEP_*)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

# The generation types' names, as GENKEEP_ENGINE_<TYPE> spells them (the task model owns the types themselves).
TYPE_NAMES = ("CREATE", "WHITE_BACKGROUND", "CLOTHING_CHANGE")


class SettingsError(ValueError):
    """A setting has a value genkeep cannot use."""


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}.") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {value}.")
    return value


def _float(env: dict[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, not {raw!r}.") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {value}.")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one genkeep process."""

    data_dir: Path = Path("data")
    database_url: str = ""
    task_timeout: float = 300.0
    sweep_interval: float = 10.0
    engine: str = "local"
    # Per type, where GENKEEP_ENGINE_<TYPE> overrides GENKEEP_ENGINE; keyed by the type's name.
    engine_by_type: dict[str, str] = field(default_factory=dict)
    local_delay: float = 0.0
    workers: int = 2
    lease_seconds: float = 30.0
    max_attempts: int = 3
    worker_poll_interval: float = 1.0
    max_unfinished_per_owner: int = 10
    max_unfinished: int = 1000
    retention_days: float = 0.0
    # 0 means a tenth of the task timeout: see min_time_left.
    min_time_left_setting: float = 0.0
    max_upload_bytes: int = 15 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    min_image_side: int = 64
    max_prompt_chars: int = 2000
    secret_key: str = ""
    owner_header: str = ""
    public_base_url: str = ""
    shutdown_grace: float = 10.0
    provider: dict[str, str] = field(default_factory=dict)

    @property
    def min_time_left(self) -> float:
        """Seconds of a task's time that must be left for a worker to start (or take over) its run."""
        return self.min_time_left_setting or self.task_timeout / 10

    def engine_for(self, task_type: str) -> str:
        return self.engine_by_type.get(task_type) or self.engine

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'genkeep.db').resolve()}"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        data_dir = Path(env.get("GENKEEP_DATA_DIR") or "data")
        return cls(
            data_dir=data_dir,
            database_url=env.get("GENKEEP_DATABASE_URL", ""),
            task_timeout=_float(env, "GENKEEP_TASK_TIMEOUT", 300.0, minimum=1.0),
            sweep_interval=_float(env, "GENKEEP_SWEEP_INTERVAL", 10.0, minimum=0.1),
            engine=env.get("GENKEEP_ENGINE") or "local",
            engine_by_type={name: env[f"GENKEEP_ENGINE_{name}"] for name in TYPE_NAMES
                            if env.get(f"GENKEEP_ENGINE_{name}")},
            local_delay=_float(env, "GENKEEP_LOCAL_DELAY", 0.0),
            workers=_int(env, "GENKEEP_WORKERS", 2),
            lease_seconds=_float(env, "GENKEEP_LEASE_SECONDS", 30.0, minimum=0.5),
            max_attempts=_int(env, "GENKEEP_MAX_ATTEMPTS", 3, minimum=1),
            worker_poll_interval=_float(env, "GENKEEP_WORKER_POLL_INTERVAL", 1.0, minimum=0.05),
            max_unfinished_per_owner=_int(env, "GENKEEP_MAX_UNFINISHED_PER_OWNER", 10, minimum=1),
            max_unfinished=_int(env, "GENKEEP_MAX_UNFINISHED", 1000, minimum=1),
            retention_days=_float(env, "GENKEEP_RETENTION_DAYS", 0.0),
            min_time_left_setting=_float(env, "GENKEEP_MIN_TIME_LEFT", 0.0),
            max_upload_bytes=_int(env, "GENKEEP_MAX_UPLOAD_BYTES", 15 * 1024 * 1024, minimum=1024),
            max_image_pixels=_int(env, "GENKEEP_MAX_IMAGE_PIXELS", 40_000_000, minimum=10_000),
            max_prompt_chars=_int(env, "GENKEEP_MAX_PROMPT_CHARS", 2000, minimum=1),
            secret_key=env.get("GENKEEP_SECRET_KEY", ""),
            owner_header=env.get("GENKEEP_OWNER_HEADER", ""),
            public_base_url=env.get("GENKEEP_PUBLIC_BASE_URL", "").rstrip("/"),
            shutdown_grace=_float(env, "GENKEEP_SHUTDOWN_GRACE", 10.0),
            provider={k: v for k, v in env.items() if k.startswith(("GENKEEP_OPENAI_", "GENKEEP_DASHSCOPE_",
                                                                    "GENKEEP_COMFYUI_"))},
        )


def load_secret_key(settings: Settings) -> str:
    """The owner-cookie signing key: GENKEEP_SECRET_KEY, else one generated once and kept in the data folder."""
    if settings.secret_key:
        if len(settings.secret_key) < 16:
            raise SettingsError("GENKEEP_SECRET_KEY must be at least 16 characters long.")
        return settings.secret_key
    path = settings.data_dir / "secret_key"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        key = secrets.token_urlsafe(48)
        f.write(key)
    return key
