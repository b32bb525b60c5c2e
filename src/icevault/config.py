"""The server's settings, each defined once, and parsing of the durations and sizes users type.

Every field of :class:`ServerSettings` carries its default and, in its metadata, how it is
given on the command line: ``icevault serve`` builds its options from these fields, each
option with an ``ICEVAULT_<NAME>`` environment variable, so a default, a help text or a unit
is written in one place.
"""

from __future__ import annotations

import re
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from icevault.core.faults import Fault
from icevault.core.models import Tier

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

ENV_PREFIX = "ICEVAULT_"


def parse_duration(text: str) -> float:
    """Seconds from '90', '90s', '15m', '24h', '2d' or '250ms'."""
    match = _DURATION_RE.fullmatch(text)
    if not match:
        raise ValueError(f"invalid duration {text!r} (examples: 30, 30s, 15m, 24h, 2d)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest exact one of '0', '250ms', '30s', '15m', '24h', '2d'."""
    if seconds == 0:
        return "0"
    for unit in ("d", "h", "m", "s"):
        count = seconds / _DURATION_UNITS[unit]
        if count == int(count) and (unit != "d" or count >= 2):  # "24h" reads plainer
            return f"{int(count)}{unit}"
    return f"{round(seconds * 1000)}ms"


def parse_size(text: str) -> int:
    """Bytes from '1048576', '8MiB', '8M', '1GiB' (binary units, as Glacier's part sizes)."""
    match = _SIZE_RE.fullmatch(text)
    if not match:
        raise ValueError(f"invalid size {text!r} (examples: 1048576, 8MiB, 1GiB)")
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _SIZE_UNITS[unit]


def format_size(size: int) -> str:
    for unit in ("t", "g", "m", "k"):
        if size and size % _SIZE_UNITS[unit] == 0:
            return f"{size // _SIZE_UNITS[unit]}{unit.upper()}iB"
    return str(size)


def parse_tier_delays(text: str) -> dict[Tier, float]:
    """'expedited=0,standard=0,bulk=0' in seconds (durations with units allowed)."""
    delays: dict[Tier, float] = {}
    names = {tier.value.lower(): tier for tier in Tier}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        tier = names.get(name.strip().lower())
        if not sep or tier is None:
            raise ValueError(
                f"invalid tier delay {item!r} (expected e.g. expedited=0,standard=0,bulk=0)"
            )
        delays[tier] = parse_duration(value)
    return delays


def format_tier_delays(delays: dict[Tier, float]) -> str:
    return ",".join(f"{tier.value.lower()}={format_duration(delays.get(tier, 0.0))}"
                    for tier in Tier)


# How a value is typed on the command line. "dir"/"file" are paths (a file that must exist
# is "existing-file"); "tiers" is parse_tier_delays's form.
Kind = Literal["text", "int", "float", "bool", "choice", "duration", "size", "tiers", "dir",
               "file", "existing-file"]


@dataclass(frozen=True, slots=True)
class Flag:
    """How one setting is given to ``icevault serve``: ``--name`` (the field's name without
    its unit suffix) and ``ICEVAULT_NAME``."""

    help: str
    kind: Kind = "text"
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    # Shown in --help in place of the default when the default is worked out at start.
    default_text: str | None = None
    # Given any number of times (a tuple); in the environment, separated by spaces.
    multiple: bool = False


def setting(default: Any = None, help: str = "", *, factory: Any = None,  # noqa: A002
            **flag: Any) -> Any:
    metadata = {"flag": Flag(help, **flag)} if help else {}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _no_delays() -> dict[Tier, float]:
    return dict.fromkeys(Tier, 0.0)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = setting("127.0.0.1", "Address to listen on.")
    port: int = setting(9099, "Port to listen on (0: one the system picks, logged at start).",
                        kind="int", minimum=0, maximum=65535)
    data_dir: Path = setting(Path("./icevault-data"),
                             "Where metadata and archive bytes are kept.", kind="dir")
    auth: str = setting("sigv4", "'off' accepts any credentials without checking signatures "
                        "(local testing only).", kind="choice", choices=("off", "sigv4"))
    region: str = setting("us-east-1", "Region in ARNs.")
    tier_delays_s: dict[Tier, float] = setting(
        help="Time until a retrieval job completes, per tier (e.g. standard=4h).",
        factory=_no_delays, kind="tiers")
    inventory_delay_s: float = setting(0.0, "Time until an inventory job completes.",
                                       kind="duration")
    job_expiry_s: float = setting(
        24 * 3600.0, "How long job output stays available after the job completes.",
        kind="duration")
    upload_expiry_s: float = setting(
        24 * 3600.0, "How long an idle multipart upload is kept before it is reclaimed.",
        kind="duration")
    metadata_url: str | None = setting(
        None, "SQLAlchemy URL of the metadata database (postgresql+psycopg://...).",
        default_text="SQLite in the data directory")
    copy_urls: tuple[str, ...] = setting(
        (), "Another store that keeps a full copy of every archive, made in the background "
        "and verified: file:///PATH or s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME] "
        "(repeat for more). A copy that fails verification is made again; hot bytes that "
        "fail are repaired from a good copy.", multiple=True)
    copy_rate: int | None = setting(
        None, "Bytes per second the copy workers may read, all stores together (e.g. "
        "50MiB): what copying may take from the server's disk and network.", kind="size",
        minimum=1, default_text="unpaced")
    background_share: float = setting(
        0.005, "While requests are being served, copies and scrub take at most this share "
        "of their threads' time (0: one block a half second; 1: they never give way); "
        "between requests they run at full speed, or at --copy-rate and --scrub-rate.",
        kind="float", minimum=0, maximum=1)
    copies_before_ack: int = setting(
        0, "Acknowledge an upload only once this many --copy-url stores hold a verified copy "
        "of it too (0: once the server's own copy is durable; the copies follow).",
        kind="int", minimum=0)
    hot_days: float | None = setting(
        None, "Remove an archive's bytes from this server's own store DAYS after every "
        "--copy-url store holds a verified copy (0: as soon as they do); a retrieval job "
        "brings them back from a copy, restoring a cold one first.", kind="float", minimum=0,
        default_text="keep")
    blob_url: str | None = setting(
        None, "Keep archive bytes in an S3-compatible object store: "
        "s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME]; credentials come from the usual "
        "AWS variables or profile.", default_text="files in the data directory")
    notification_url: str | None = setting(
        None, "Webhook that receives job-completion notifications (Glacier would publish to "
        "SNS).")
    webhook_allow_private: bool = setting(
        False, "Let webhooks (topics and --notification-url) reach loopback and private "
        "addresses (LAN receivers). Link-local addresses and this server's own are never "
        "reached.", kind="bool")
    tls_cert: Path | None = setting(None, "Serve HTTPS with this PEM certificate (chain).",
                                    kind="existing-file")
    tls_key: Path | None = setting(None, "The certificate's PEM private key.",
                                   kind="existing-file")
    log_level: str = setting("info", "The least severe log lines written.", kind="choice",
                             choices=("debug", "info", "warning", "error"))
    log_format: str = setting("text", "Log lines for people (text) or one JSON object per "
                              "line (json).", kind="choice", choices=("text", "json"))
    # Connections and transfers (see icevault.server.transfer and icevault.server.listener).
    io_timeout_s: float = setting(
        30.0, "Longest a request body may stall; with --min-rate, how long a body may take "
        "per 4 MiB in either direction.", kind="duration")
    min_rate: int = setting(
        64 * 1024, "Slowest transfer rate (bytes per second, per 4 MiB step) a body may keep.",
        kind="size", minimum=1)
    body_threads: int = setting(
        8, "Threads that read upload bodies of 8 MiB and more straight from the socket (the "
        "least CPU per byte); with all busy, or 0, bodies are read on the event loop.",
        kind="int", minimum=0, maximum=256)
    idle_timeout_s: float = setting(
        15.0, "How long a connection may stay idle, or take to send a request's headers.",
        kind="duration")
    max_connections: int | None = setting(
        None, "Connections served at once; more are answered 503 and closed.", kind="int",
        minimum=1, default_text="from the open-file limit, at most 10000")
    # A change made through any server (or icevault admin) applies on every server within
    # this bound. One key lookup per key per second costs nothing; a longer bound keeps a
    # disabled key working longer.
    cache_ttl_s: float = setting(
        1.0, "How long access keys and identity policies are cached: a key disabled or a "
        "policy changed with icevault admin applies within this time.", kind="duration")
    job_lease_s: float = setting(
        300.0, "With several servers on one database: how long a server holds a due job (or "
        "a notification) before another may take it over, should the first have died.",
        kind="duration")
    scrub_interval_s: float = setting(
        0.0, "Re-verify every stored archive this often (e.g. 30d); 0 turns the periodic "
        "scrub off.", kind="duration")
    scrub_rate: int | None = setting(
        None, "Bytes per second the periodic scrub may read (e.g. 50MiB).", kind="size",
        minimum=1, default_text="unpaced")
    # Unreferenced bytes younger than this are never swept: another server sharing the
    # store may be between writing them and recording them.
    orphan_grace_s: float = setting(
        24 * 3600.0, "Unreferenced bytes younger than this are never swept (another server "
        "sharing the object store may be writing them).", kind="duration")
    orphan_sweep_interval_s: float = setting(
        6 * 3600.0, "How often unreferenced bytes are looked for besides at start (0: only "
        "at start).", kind="duration")
    metrics: str = setting(
        "token", "Prometheus metrics at GET /metrics on the same listener: only for scrapes "
        "that send the operator's bearer token (token), for anyone who reaches the port "
        "(open), or none (off). They count every account's archives, jobs and requests.",
        kind="choice", choices=("token", "open", "off"))
    metrics_token_file: Path | None = setting(
        None, "The file holding the bearer token for GET /metrics (made, mode 0600, when "
        "missing).", kind="file", default_text="<data-dir>/metrics-token")
    test_controls: bool = setting(
        False, "For tests only: a control endpoint (/_icevault/test) that moves the clock, "
        "injects faults, seeds and resets vaults, without credentials. Never on real data.",
        kind="bool")
    # Not options: how often background upkeep runs, the request workers, and the fault
    # rules in force from the start (``--faults FILE.json``, read by the command).
    maintenance_interval_s: float = 60.0
    workers: int = 16
    faults: tuple[Fault, ...] = ()


def option_fields() -> list[tuple[Field[Any], Flag]]:
    """The settings given on the command line, in their declared order."""
    return [(f, f.metadata["flag"]) for f in fields(ServerSettings) if "flag" in f.metadata]


def option_name(settings_field: Field[Any]) -> str:
    """``job_expiry_s`` → ``job-expiry``, ``copy_urls`` → ``copy-url``: the unit is the
    value's business, and a repeated option is named for one of its values."""
    name = settings_field.name.removesuffix("_s")
    if settings_field.metadata["flag"].multiple:
        name = name.removesuffix("s")
    return name.replace("_", "-")


def envvar_name(settings_field: Field[Any]) -> str:
    return ENV_PREFIX + option_name(settings_field).replace("-", "_").upper()


def without_settings(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` without the variables ``icevault serve`` reads settings from: a server
    the testing kit starts is configured by its arguments alone, never by an
    ``ICEVAULT_METADATA_URL`` a developer's shell exports for a real server."""
    names = {envvar_name(f) for f, _ in option_fields()} | {ENV_PREFIX + "FAULTS"}
    return {name: value for name, value in environ.items() if name not in names}


def default_text(settings_field: Field[Any], flag: Flag) -> str | None:
    """The default as a user would type it (``24h``, ``64KiB``), or None for no default."""
    if flag.default_text is not None:
        return flag.default_text
    default = getattr(ServerSettings(), settings_field.name)
    if default is None or flag.kind == "bool" or flag.multiple:
        return None
    if flag.kind == "duration":
        return format_duration(default)
    if flag.kind == "size":
        return format_size(default)
    if flag.kind == "tiers":
        return format_tier_delays(default)
    return str(default)
