"""Settings, read once from the environment (GENKEEP_*)."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

# The generation types' names, as GENKEEP_ENGINE_<TYPE> spells them (the task model owns the types themselves).
TYPE_NAMES = ("CREATE", "WHITE_BACKGROUND", "CLOTHING_CHANGE")
# Owner cookies and signed image links are HMACs under this key: a shorter one is guessable offline.
MIN_SECRET_KEY_CHARS = 32
SECRET_KEY_FILE = "secret_key"
# The request header in which a login proxy proves itself with GENKEEP_OWNER_HEADER_SECRET.
PROXY_SECRET_HEADER = "X-Genkeep-Proxy-Secret"
MAKE_A_KEY = "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


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


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be 1 or 0 (true or false), not {raw!r}.")


def _storage_url(env: dict[str, str], name: str) -> str:
    raw = env.get(name, "").strip()
    scheme, _, rest = raw.partition("://")
    if not raw or (scheme == "s3" and rest.partition("/")[0]) or (scheme == "file" and rest.startswith("/")):
        return raw
    raise SettingsError(f"{name} must be s3://bucket/prefix (an S3-compatible bucket; AWS_ENDPOINT_URL and the "
                        "other standard AWS_* variables say where and how to reach it) or file:///path/to/folder, "
                        f"not {raw!r}.")


def _networks(env: dict[str, str], name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for part in env.get(name, "").split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise SettingsError(f"{name} must list IP addresses or networks (CIDR) separated by commas, "
                                    f"like 127.0.0.1,10.0.0.0/8; {part.strip()!r} is neither.") from None
    return tuple(networks)


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
    # Trusted-header mode must know the request came from the deployment's proxy: by a shared secret it sends
    # in PROXY_SECRET_HEADER, by its address, or both.
    owner_header_secret: str = ""
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    public_base_url: str = ""
    # Browsers reach the studio over https (the owner cookie is then __Host-, Secure); None: as the public URL.
    https: bool | None = None
    shutdown_grace: float = 10.0
    # Where images live: "" is the data folder's images/; s3://bucket/prefix or file:///folder.
    storage_url: str = ""
    provider: dict[str, str] = field(default_factory=dict)

    @property
    def min_time_left(self) -> float:
        """Seconds of a task's time that must be left for a worker to start (or take over) its run."""
        return self.min_time_left_setting or self.task_timeout / 10

    def engine_for(self, task_type: str) -> str:
        return self.engine_by_type.get(task_type) or self.engine

    @property
    def images_dir(self) -> Path:
        """The images folder, when images live in a folder."""
        if self.storage_url.startswith("file://"):
            return Path(self.storage_url.removeprefix("file://"))
        return self.data_dir / "images"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'genkeep.db').resolve()}"

    @property
    def served_over_https(self) -> bool:
        if self.https is not None:
            return self.https
        return self.public_base_url.startswith("https://")

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """The settings in `environ`, or in this process's environment: then this is a genkeep process starting
        (serve, worker, sweep, db upgrade), and from here on the files it makes are private."""
        if environ is None:
            keep_files_private()
        env = dict(os.environ if environ is None else environ)
        data_dir = Path(env.get("GENKEEP_DATA_DIR") or "data")
        settings = cls(
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
            owner_header=env.get("GENKEEP_OWNER_HEADER", "").strip(),
            owner_header_secret=env.get("GENKEEP_OWNER_HEADER_SECRET", ""),
            trusted_proxies=_networks(env, "GENKEEP_TRUSTED_PROXIES"),
            public_base_url=env.get("GENKEEP_PUBLIC_BASE_URL", "").rstrip("/"),
            https=_flag(env, "GENKEEP_HTTPS", env.get("GENKEEP_PUBLIC_BASE_URL", "").startswith("https://")),
            shutdown_grace=_float(env, "GENKEEP_SHUTDOWN_GRACE", 10.0),
            storage_url=_storage_url(env, "GENKEEP_STORAGE_URL"),
            provider={k: v for k, v in env.items() if k.startswith(("GENKEEP_OPENAI_", "GENKEEP_DASHSCOPE_",
                                                                    "GENKEEP_COMFYUI_"))},
        )
        check_owner_header(settings)
        return settings


def check_owner_header(settings: Settings) -> None:
    """Trusted-header mode without a way to know the proxy would let anyone who reaches genkeep be anyone."""
    if not settings.owner_header:
        return
    if not settings.owner_header_secret and not settings.trusted_proxies:
        raise SettingsError(
            "GENKEEP_OWNER_HEADER is set, but nothing proves a request came through your login proxy: set "
            f"GENKEEP_OWNER_HEADER_SECRET (a secret the proxy sends in the {PROXY_SECRET_HEADER} header) and/or "
            "GENKEEP_TRUSTED_PROXIES (the proxy's addresses).")
    if settings.owner_header_secret and len(settings.owner_header_secret) < MIN_SECRET_KEY_CHARS:
        raise SettingsError(f"GENKEEP_OWNER_HEADER_SECRET must be at least {MIN_SECRET_KEY_CHARS} characters "
                            f"long; {MAKE_A_KEY}")


def keep_files_private() -> None:
    """New files and folders (database, images, key) readable by genkeep's own user only. Call at start-up."""
    os.umask(0o077)


def load_secret_key(settings: Settings) -> str:
    """The owner-cookie signing key: GENKEEP_SECRET_KEY, else one generated once and kept in the data folder."""
    if settings.secret_key:
        if len(settings.secret_key) < MIN_SECRET_KEY_CHARS:
            raise SettingsError(f"GENKEEP_SECRET_KEY must be at least {MIN_SECRET_KEY_CHARS} characters long; "
                                f"{MAKE_A_KEY}")
        return settings.secret_key
    path = settings.data_dir / SECRET_KEY_FILE
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _write_new_key(path)
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_KEY_CHARS:
        raise SettingsError(
            f"{path} holds a key of {len(key)} characters; genkeep needs at least {MIN_SECRET_KEY_CHARS}. Delete "
            "the file to have a new key generated (owner cookies made with the old key stop working), or set "
            f"GENKEEP_SECRET_KEY; {MAKE_A_KEY}")
    return key


def _write_new_key(path: Path) -> None:
    """Write a fresh key to a private temporary file, then link it into place: the key file is never seen empty
    or half-written, and when several processes start at once the first link wins and all read the same key."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process was first: everyone reads its key
        except OSError:
            # A file system without hard links (some network mounts): a rename is still whole, but two processes
            # starting at that very instant could each keep their own key. GENKEEP_SECRET_KEY avoids both.
            if not path.exists():
                os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
