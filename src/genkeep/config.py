"""Settings, read once from the environment (GENKEEP_*) and validated by pydantic.

Each setting is declared once, below, with its variable, default and meaning (the engines' own settings too):
start-up reads each from its variable and checks them, every error names the variable, and the README's settings
table is generated from the same declarations (`genkeep settings`; a test compares the two).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

# Owner cookies and signed image links are HMACs under this key: a shorter one is guessable offline.
MIN_SECRET_KEY_CHARS = 32
SECRET_KEY_FILE = "secret_key"
# The request header in which a login proxy proves itself with GENKEEP_OWNER_HEADER_SECRET.
PROXY_SECRET_HEADER = "X-Genkeep-Proxy-Secret"
MAKE_A_KEY = "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
PREFIX = "GENKEEP_"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# One full-size image at a time (GENKEEP_MAX_IMAGE_PIXELS's default), or several smaller ones.
DEFAULT_DECODE_PIXELS = 25_000_000
DECODE_PIXELS_MIN = 10_000


class SettingsError(ValueError):
    """A setting has a value genkeep cannot use."""


def setting(default: Any, meaning: str, *, shown: str | None = None, unit: str = "", variable: str | None = None,
            secret: bool = False, **rules: Any) -> Any:
    """One GENKEEP_* setting: its default, what it means (the README's words) and its rules (ge=...).

    `shown` is the default as the README says it, when the value alone would not tell (a derived default);
    `unit` words the error for a number ("seconds"); `variable` is only for a name that is not GENKEEP_<FIELD>."""
    return Field(default, description=meaning, validation_alias=variable, repr=not secret,
                 json_schema_extra={"shown_default": shown, "unit": unit}, **rules)


class Settings(BaseSettings):
    """Everything configurable about one genkeep process.

    `Settings(...)` is exactly what it is given (tests, embedding); `Settings.from_env()` reads the environment."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True)

    database_url: str = setting("", "any SQLAlchemy URL; `postgresql://…` to scale out",
                                shown="SQLite file in the data folder")
    data_dir: Path = setting(Path("data"), "database file, images and the generated secret key", shown="./data")
    storage_url: str = setting("", "where images live: `s3://bucket/prefix` for any S3-compatible service "
                               "(configured by the standard `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, "
                               "`AWS_SECRET_ACCESS_KEY`, `AWS_REGION` variables; see [Images in object storage]"
                               "(#images-in-object-storage)), or `file:///path` for another folder",
                               shown="the data folder's `images/`")
    task_timeout: float = setting(300.0, "seconds a task may stay processing before it fails with error.code "
                                  "`timeout`", unit="seconds", ge=1.0)
    sweep_interval: float = setting(10.0, "seconds between two looks for timed-out tasks", unit="seconds", ge=0.1)
    engine: str = setting("local", "which engine runs generations: `local`, `openai`, `dashscope`, `comfyui`, "
                          "`module:factory`, or `none` (only the types a GENKEEP_ENGINE_<TYPE> names)")
    engine_create: str = setting("", "the engine for CREATE tasks (the same names); a worker claims only the types "
                                 "it has an engine for", shown="GENKEEP_ENGINE")
    engine_white_background: str = setting("", "the engine for WHITE_BACKGROUND tasks", shown="GENKEEP_ENGINE")
    engine_clothing_change: str = setting("", "the engine for CLOTHING_CHANGE tasks", shown="GENKEEP_ENGINE")
    local_delay: float = setting(0.0, "extra seconds the local engine takes, to show and test long generations",
                                 unit="seconds", ge=0.0)
    workers: int = setting(2, "worker threads in `genkeep serve` (0: API only) and in each `genkeep worker`", ge=0)
    lease_seconds: float = setting(30.0, "how long a worker's claim on a task lasts without a heartbeat before "
                                   "another worker takes it over", unit="seconds", ge=0.5)
    max_attempts: int = setting(3, "how many workers may die on one task before it fails with `interrupted`", ge=1)
    worker_poll_interval: float = setting(1.0, "seconds an idle worker waits before looking again (new tasks wake "
                                          "workers at once anyway)", unit="seconds", ge=0.05)
    max_unfinished_per_owner: int = setting(10, "tasks one owner may have processing at once; more wait in line "
                                            "(`pending`, their timeout not started yet)", ge=1)
    # A seller's new collection is 20-200 photos: one drop of a whole collection waits in line rather than being
    # refused. Each waiting photo is a row and its stored upload (up to GENKEEP_MAX_UPLOAD_BYTES).
    max_waiting_per_owner: int = setting(200, "tasks one owner may have waiting in line behind those; more answers "
                                         "429 with Retry-After (0: none wait, the running limit answers 429)", ge=0)
    wait_timeout: float = setting(3600.0, "seconds a task may wait in line before it fails with error.code "
                                  "`timeout` (only when the owner's running tasks never finish: no worker runs)",
                                  unit="seconds", ge=1.0)
    max_unfinished: int = setting(1000, "unfinished tasks across all owners (holds when someone drops their "
                                  "cookies); more answers 429 with Retry-After", ge=1)
    # 0 means a tenth of the task timeout: see min_time_left.
    min_time_left_setting: float = setting(
        0.0, "seconds of a task's time that must be left for a worker to start or take over its run; a task with "
        "less left is not started (it would most likely be cut off, and billed) and fails `timeout` at its deadline",
        shown="a tenth of GENKEEP_TASK_TIMEOUT", unit="seconds", variable="GENKEEP_MIN_TIME_LEFT", ge=0.0)
    retention_days: float = setting(0.0, "finished tasks and their images older than this are removed (checked "
                                    "hourly)", shown="0 (keep all)", unit="days", ge=0.0)
    max_upload_bytes: int = setting(15 * 1024 * 1024, "bytes per uploaded image (413 above)", ge=1024)
    # 25 megapixels: every phone's and most cameras' full-size photos (6000x4000 is 24), far more than any engine
    # works at; decoding one takes about 100-400 MB depending on its format.
    max_image_pixels: int = setting(25_000_000, "pixels per uploaded image, checked before decoding (422 above)",
                                    ge=10_000)
    decode_pixels: int = setting(DEFAULT_DECODE_PIXELS, "pixels of uploaded images one `genkeep serve` decodes at "
                                 "once (`--processes N` share them): this bounds the memory uploads take, whatever "
                                 "their number (an upload waits for room, and after 10 s answers 503 with "
                                 "Retry-After)", ge=DECODE_PIXELS_MIN)
    client_rate: int = setting(120, "new generations (submissions and retries) one client address may send per "
                               "minute, refused ones included; more answers 429 with Retry-After (behind a proxy, "
                               "set GENKEEP_TRUSTED_PROXIES so the address is the browser's); 0 turns it off",
                               unit="per minute", ge=0)
    min_image_side: int = setting(64, "pixels an uploaded image's shorter side must have (422 below)", ge=1)
    max_prompt_chars: int = setting(2000, "characters per prompt", ge=1)
    secret_key: str = setting("", "signs owner cookies and providers' image URLs, at least 32 characters; if "
                              "unset, generated once and kept in the data folder", shown="generated", secret=True)
    owner_header: str = setting("", "behind your own login: the trusted request header that carries the user id (no "
                                "cookie then); needs one or both of the next two", shown="(unset)")
    # Trusted-header mode must know the request came from the deployment's proxy: by a shared secret it sends in
    # PROXY_SECRET_HEADER, by its address, or both.
    owner_header_secret: str = setting("", f"a secret (32+ characters) your login proxy sends in "
                                       f"`{PROXY_SECRET_HEADER}`; a user header without it answers 403",
                                       shown="(unset)", secret=True)
    trusted_proxies: Annotated[tuple[Network, ...], NoDecode] = setting(
        (), "your proxies' addresses or networks, e.g. `10.0.0.0/8,127.0.0.1`: their X-Forwarded-For and "
        "X-Forwarded-Proto are believed; with GENKEEP_OWNER_HEADER, a user header from elsewhere answers 403",
        shown="(unset)")
    public_base_url: str = setting("", "genkeep's public address, for providers that fetch reference images by "
                                   "URL; also accepted as the studio's own origin", shown="(unset)")
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = setting(
        (), "host names the studio answers to besides loopback names and addresses and GENKEEP_PUBLIC_BASE_URL's "
        "host, separated by commas, e.g. `studio.lan,192.168.1.20`; `*` answers to any (other hosts answer 400: "
        "DNS rebinding)", shown="(none)")
    # None: as the public URL says, else as each request says (see served_over_https).
    https: bool | None = setting(None, "browsers reach the studio over https: the owner cookie is then "
                                 "`__Host-genkeep_owner`, Secure",
                                 shown="1 if GENKEEP_PUBLIC_BASE_URL is https; else as each request says (its "
                                 "scheme, or X-Forwarded-Proto from GENKEEP_TRUSTED_PROXIES)")
    shutdown_grace: float = setting(10.0, "seconds a stopping worker lets running tasks finish before handing them "
                                    "back", unit="seconds", ge=0.0)
    log_format: Literal["text", "json"] = setting("text", "`json`: one JSON object per log line (each task "
                                                  "transition with its id, type, engine, attempt, duration and "
                                                  "outcome), for a log collector")
    metrics_address: str = setting("", "`host:port` where `genkeep worker` serves Prometheus metrics at /metrics, "
                                   "e.g. `0.0.0.0:9464` (`genkeep serve` always serves them at its own /metrics)",
                                   shown="(none)")
    metrics_token: str = setting("", "when set, `genkeep serve`'s /metrics answers only requests carrying "
                                 "`Authorization: Bearer <this token>` (Prometheus: its scrape config's bearer "
                                 "token); unset, anyone who reaches the port can read the counts", shown="(unset)",
                                 secret=True)
    # The engines' own settings, read only when the engine is used (see the README's Engines section). An empty
    # prompt template means the engine's built-in one (engines/prompts.py).
    openai_api_key: str = setting("", "the OpenAI engine's API key", shown="(required)", secret=True)
    openai_base_url: str = setting("", "base URL of an OpenAI-compatible gateway, e.g. `https://gateway.example/v1`",
                                   shown="OpenAI")
    openai_model: str = setting("gpt-image-1", "OpenAI's image model")
    openai_size: str = setting("1024x1024", "OpenAI's output size")
    openai_timeout: float = setting(180.0, "seconds to wait for one OpenAI generation (while streaming: for the next "
                                    "event)", unit="seconds", gt=0.0)
    openai_stream: bool = setting(True, "0: one plain OpenAI call, for gateways that cannot stream (no previews "
                                  "then)", shown="1")
    openai_partial_images: int = setting(2, "partial images to ask OpenAI for while streaming, 1 to 3 (each costs "
                                         "about 100 output tokens)", ge=1, le=3)
    openai_prompt_create: str = setting("", "OpenAI's prompt template for CREATE; `{prompt}` is the user's words",
                                        shown="built in")
    openai_prompt_white_background: str = setting("", "OpenAI's prompt template for WHITE_BACKGROUND",
                                                  shown="built in")
    openai_prompt_clothing_change: str = setting("", "OpenAI's prompt template for CLOTHING_CHANGE", shown="built in")
    dashscope_api_key: str = setting("", "the DashScope engine's API key", shown="(required)", secret=True)
    dashscope_base_url: str = setting("https://dashscope.aliyuncs.com/api/v1", "DashScope's API base (Singapore: "
                                      "https://dashscope-intl.aliyuncs.com/api/v1)")
    dashscope_workspace: str = setting("", "DashScope workspace id, sent as X-DashScope-WorkSpace", shown="(none)")
    dashscope_create_model: str = setting("wan2.2-t2i-flash", "DashScope's text-to-image model for CREATE")
    dashscope_reference_model: str = setting("wan2.5-i2i-preview", "DashScope's model for CREATE with reference "
                                             "images (the first 3 are sent)")
    dashscope_white_background_model: str = setting("wanx2.1-imageedit", "DashScope's image-edit model "
                                                     "(`description_edit`) for WHITE_BACKGROUND")
    dashscope_clothing_change_model: str = setting("aitryon", "DashScope's virtual try-on model for CLOTHING_CHANGE "
                                                   "(`aitryon-plus` for higher quality; it takes no prompt)")
    dashscope_size: str = setting("1024*1024", "DashScope's text-to-image size")
    dashscope_timeout: float = setting(30.0, "seconds per HTTP request to DashScope", unit="seconds", gt=0.0)
    dashscope_prompt_create: str = setting("", "DashScope's prompt template for CREATE; `{prompt}` is the user's "
                                           "words", shown="built in")
    dashscope_prompt_white_background: str = setting("", "DashScope's prompt template for WHITE_BACKGROUND",
                                                     shown="built in")
    comfyui_url: str = setting("http://127.0.0.1:8188", "the ComfyUI server")
    comfyui_workflows: str = setting("", "folder holding the three ComfyUI workflow files",
                                     shown="bundled `comfyui_workflows/`")
    comfyui_api_key: str = setting("", "Bearer token, for a ComfyUI behind an authenticating proxy", shown="(none)",
                                   secret=True)
    comfyui_timeout: float = setting(30.0, "seconds per HTTP request to ComfyUI", unit="seconds", gt=0.0)
    comfyui_prompt_create: str = setting("", "the template ComfyUI's workflows get as `{{prompt}}` for CREATE",
                                         shown="built in")
    comfyui_prompt_white_background: str = setting("", "the same for WHITE_BACKGROUND", shown="built in")
    comfyui_prompt_clothing_change: str = setting("", "the same for CLOTHING_CHANGE", shown="built in")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        networks = []
        for part in value.split(","):
            if part.strip():
                try:
                    networks.append(ipaddress.ip_network(part.strip(), strict=False))
                except ValueError:
                    raise ValueError(f"must list IP addresses or networks (CIDR) separated by commas, like "
                                     f"127.0.0.1,10.0.0.0/8; {part.strip()!r} is neither.") from None
        return tuple(networks)

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("owner_header", mode="after")
    @classmethod
    def _header_name(cls, value: str) -> str:
        return value.strip()

    @field_validator("public_base_url", mode="after")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("metrics_address", mode="after")
    @classmethod
    def _address(cls, value: str) -> str:
        if value:
            metrics_address(value)
        return value

    @field_validator("storage_url", mode="after")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        raw = value.strip()
        scheme, _, rest = raw.partition("://")
        if not raw or (scheme == "s3" and rest.partition("/")[0]) or (scheme == "file" and rest.startswith("/")):
            return raw
        raise ValueError("must be s3://bucket/prefix (an S3-compatible bucket; AWS_ENDPOINT_URL and the other "
                         f"standard AWS_* variables say where and how to reach it) or file:///path/to/folder, not "
                         f"{raw!r}.")

    @field_validator("engine", mode="after")
    @classmethod
    def _engine(cls, value: str) -> str:
        return value or "local"

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what the caller passes: the environment is read once, at start-up, by from_env.
        return (init_settings,)

    @property
    def min_time_left(self) -> float:
        """Seconds of a task's time that must be left for a worker to start (or take over) its run."""
        return self.min_time_left_setting or self.task_timeout / 10

    @property
    def engine_by_type(self) -> dict[str, str]:
        """The per-type engines that are set (GENKEEP_ENGINE_<TYPE>), by the type's name."""
        chosen = {"CREATE": self.engine_create, "WHITE_BACKGROUND": self.engine_white_background,
                  "CLOTHING_CHANGE": self.engine_clothing_change}
        return {name: engine for name, engine in chosen.items() if engine}

    def engine_for(self, task_type: str) -> str:
        return self.engine_by_type.get(task_type) or self.engine

    def engine_variable(self, task_type: str) -> str:
        """The variable that chose this type's engine, for errors that must name it."""
        return f"{PREFIX}ENGINE_{task_type}" if task_type in self.engine_by_type else f"{PREFIX}ENGINE"

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
    def served_over_https(self) -> bool | None:
        """True or False when the settings say; None when each request says (its scheme, or a trusted proxy's
        X-Forwarded-Proto)."""
        if self.https is not None:
            return self.https
        if self.public_base_url.startswith("https://"):
            return True
        return None

    def with_overrides(self, **changes: object) -> Settings:
        return self.model_copy(update=changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in `environ`, or in this process's environment: then this is a genkeep process starting
        (serve, worker, sweep, db upgrade), and from here on the files it makes are private."""
        if environ is None:
            keep_files_private()
        env = os.environ if environ is None else environ
        # Each setting from its own variable; an empty (or blank) one keeps the default.
        values = {name: env[variable] for name, variable in variables().items() if env.get(variable, "").strip()}
        try:
            settings = cls.model_validate(values)
        except ValidationError as error:
            raise SettingsError(explain(error)) from None
        check_owner_header(settings)
        return settings


def variables() -> dict[str, str]:
    """Every setting's field name and the environment variable it is read from."""
    return {name: variable_of(name, field) for name, field in Settings.model_fields.items()}


def variable_of(name: str, field: FieldInfo) -> str:
    """The environment variable a setting is read from."""
    alias = field.validation_alias
    return alias if isinstance(alias, str) else PREFIX + name.upper()


def _field_by_key(key: object) -> tuple[str, FieldInfo] | None:
    for name, field in Settings.model_fields.items():
        if key in (name, field.validation_alias):
            return name, field
    return None


def explain(error: ValidationError) -> str:
    """Every problem in one start-up's settings, each a sentence that names its variable."""
    sentences = []
    for problem in error.errors():
        found = _field_by_key(problem["loc"][0]) if problem["loc"] else None
        if found is None:
            sentences.append(problem["msg"] + ".")
            continue
        name, field = found
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        unit = str(extra.get("unit") or "")
        raw = problem.get("input")
        context = problem.get("ctx") or {}
        kind = problem["type"]
        if kind in ("int_parsing", "int_from_float", "int_type"):
            rule = f"must be a whole number, not {raw!r}."
        elif kind in ("float_parsing", "float_type"):
            rule = f"must be a number{' of ' + unit if unit else ''}, not {raw!r}."
        elif kind == "greater_than_equal":
            rule = f"must be at least {context.get('ge')}, not {raw}."
        elif kind == "greater_than":
            rule = f"must be more than {context.get('gt')}{' ' + unit if unit else ''}, not {raw}."
        elif kind == "less_than_equal":
            rule = f"must be at most {context.get('le')}, not {raw}."
        elif kind in ("bool_parsing", "bool_type"):
            rule = f"must be 1 or 0 (true or false), not {raw!r}."
        elif kind == "literal_error":
            rule = f"must be one of {context.get('expected')}, not {raw!r}."
        elif kind == "value_error":
            rule = str(context.get("error", problem["msg"]))
        else:
            rule = f"is not valid ({problem['msg']}): {raw!r}."
        sentences.append(f"{variable_of(name, field)} {rule}")
    return " ".join(sentences)


def metrics_address(value: str) -> tuple[str, int]:
    """GENKEEP_METRICS_ADDRESS as (host, port); an empty host listens on every interface."""
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be host:port with a port from 1 to 65535, like 0.0.0.0:9464, not {value!r}.")
    return host.strip("[]") or "0.0.0.0", int(port)


def readme_table() -> str:
    """The README's settings table, from the declarations above (`genkeep settings` prints it)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if field.description is None:
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        shown = extra.get("shown_default")
        if shown is None:
            default = field.default
            shown = f"{default:g}" if isinstance(default, float) else str(default)
        lines.append(f"| {variable_of(name, field)} | {shown} | {field.description} |")
    return "\n".join(lines) + "\n"


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
