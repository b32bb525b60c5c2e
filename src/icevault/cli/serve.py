"""``icevault serve``: run the Glacier-compatible server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import click

from icevault.config import ServerSettings, parse_duration, parse_size, parse_tier_delays
from icevault.core.faults import Fault


class StartupError(click.ClickException):
    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"icevault serve: {self.format_message()}", err=True)


class _OneLineUsageError(click.UsageError):
    def show(self, file: Any = None) -> None:
        click.echo(f"icevault serve: {self.format_message()} (see icevault serve --help)",
                   err=True)


class ServeCommand(click.Command):
    """Usage errors in one line: a service manager's log should say what is wrong, plainly."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _OneLineUsageError(exc.format_message(), ctx) from None


def _size(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if size < 1:
        raise click.BadParameter("must be at least 1")
    return size


def _duration(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _load_faults(path: Path | None, test_controls: bool) -> tuple[Fault, ...]:
    if path is None:
        return ()
    if not test_controls:
        raise StartupError("--faults needs --test-controls")
    from icevault.core.errors import GlacierError
    from icevault.core.parsing import load_json

    try:
        rules = load_json(path.read_bytes())
        if not isinstance(rules, list):
            raise StartupError(f"--faults {path}: expected a JSON list of fault rules")
        return tuple(Fault.from_json(rule) for rule in rules)
    except GlacierError as exc:
        raise StartupError(f"--faults {path}: {exc.message}") from None


@click.command(cls=ServeCommand)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=9099, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--data-dir",
    default="./icevault-data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where metadata and archive bytes are kept.",
)
@click.option(
    "--auth",
    type=click.Choice(["off", "sigv4"]),
    default="sigv4",
    show_default=True,
    help="'off' accepts any credentials without checking signatures (local testing only).",
)
@click.option("--region", default="us-east-1", show_default=True, help="Region in ARNs.")
@click.option(
    "--tier-delays",
    default="expedited=0,standard=0,bulk=0",
    show_default=True,
    help="Seconds until a retrieval job completes, per tier (e.g. standard=4h).",
)
@click.option(
    "--inventory-delay", default="0", show_default=True, callback=_duration,
    help="Time until an inventory job completes.",
)
@click.option(
    "--job-expiry", default="24h", show_default=True, callback=_duration,
    help="How long job output stays available after the job completes.",
)
@click.option(
    "--upload-expiry", default="24h", show_default=True, callback=_duration,
    help="How long an idle multipart upload is kept before it is reclaimed.",
)
@click.option(
    "--metadata-url", default=None,
    help="SQLAlchemy URL of the metadata database (default: SQLite in the data directory).",
)
@click.option(
    "--blob-url", default=None,
    help="Keep archive bytes in an S3-compatible object store: "
         "s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME]; credentials come from the usual "
         "AWS variables or profile (default: files in the data directory).",
)
@click.option(
    "--notification-url", default=None,
    help="Webhook that receives job-completion notifications (Glacier would publish to SNS).",
)
@click.option(
    "--webhook-allow-private", is_flag=True, default=False,
    help="Let webhooks (topics and --notification-url) reach loopback and private addresses "
         "(LAN receivers). Link-local addresses and this server's own are never reached.",
)
@click.option("--tls-cert", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Serve HTTPS with this PEM certificate (chain).")
@click.option("--tls-key", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The certificate's PEM private key.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option(
    "--io-timeout", default="30s", show_default=True, callback=_duration,
    help="Longest a request body may stall; with --min-rate, how long a body may take per "
         "4 MiB in either direction.",
)
@click.option(
    "--min-rate", default="64KiB", show_default=True, callback=_size,
    help="Slowest transfer rate (bytes per second, per 4 MiB step) a body may keep.",
)
@click.option(
    "--body-threads", default=8, show_default=True, type=click.IntRange(0, 256),
    help="Threads that read upload bodies of 8 MiB and more straight from the socket (the "
         "least CPU per byte); with all busy, or 0, bodies are read on the event loop.",
)
@click.option(
    "--idle-timeout", default="15s", show_default=True, callback=_duration,
    help="How long a connection may stay idle, or take to send a request's headers.",
)
@click.option(
    "--max-connections", default=None, type=click.IntRange(min=1),
    help="Connections served at once; more are answered 503 and closed "
         "[default: from the open-file limit, at most 10000].",
)
@click.option(
    "--cache-ttl", default="1s", show_default=True, callback=_duration,
    help="How long access keys and identity policies are cached: a key disabled or a policy "
         "changed with icevault admin applies within this time.",
)
@click.option(
    "--job-lease", default="5m", show_default=True, callback=_duration,
    help="With several servers on one database: how long a server holds a due job (or a "
         "notification) before another may take it over, should the first have died.",
)
@click.option(
    "--scrub-interval", default="0", show_default=True, callback=_duration,
    help="Re-verify every stored archive this often (e.g. 30d); 0 turns the periodic scrub off.",
)
@click.option(
    "--scrub-rate", default=None, type=click.FloatRange(min=0.001),
    help="MB/s the periodic scrub may read [default: unpaced].",
)
@click.option(
    "--orphan-grace", default="24h", show_default=True, callback=_duration,
    help="Unreferenced bytes younger than this are never swept (another server sharing the "
         "object store may be writing them).",
)
@click.option(
    "--orphan-sweep-interval", default="6h", show_default=True, callback=_duration,
    help="How often unreferenced bytes are looked for besides at start (0: only at start).",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="Log lines for people (text) or one JSON object per line (json).",
)
@click.option(
    "--metrics", "metrics", type=click.Choice(["token", "open", "off"]), default="token",
    show_default=True,
    help="Prometheus metrics at GET /metrics on the same listener: only for scrapes that send "
         "the operator's bearer token (token), for anyone who reaches the port (open), or "
         "none (off). They count every account's archives, jobs and requests.",
)
@click.option(
    "--metrics-token-file", default=None, type=click.Path(dir_okay=False, path_type=Path),
    help="The file holding the bearer token for GET /metrics (made, mode 0600, when "
         "missing). Default: <data-dir>/metrics-token.",
)
@click.option(
    "--test-controls", is_flag=True, default=False,
    help="For tests only: a control endpoint (/_icevault/test) that moves the clock, injects "
         "faults, seeds and resets vaults, without credentials. Never on real data.",
)
@click.option(
    "--faults", "faults_file", default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Fault rules (a JSON list) in force from the start; needs --test-controls.",
)
def serve(
    host: str,
    port: int,
    data_dir: Path,
    auth: str,
    region: str,
    tier_delays: str,
    inventory_delay: float,
    job_expiry: float,
    upload_expiry: float,
    metadata_url: str | None,
    blob_url: str | None,
    notification_url: str | None,
    webhook_allow_private: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    log_level: str,
    io_timeout: float,
    min_rate: int,
    body_threads: int,
    idle_timeout: float,
    max_connections: int | None,
    cache_ttl: float,
    job_lease: float,
    scrub_interval: float,
    scrub_rate: float | None,
    orphan_grace: float,
    orphan_sweep_interval: float,
    log_format: str,
    metrics: str,
    metrics_token_file: Path | None,
    test_controls: bool,
    faults_file: Path | None,
) -> None:
    """Run the Glacier-compatible server."""
    from icevault.server import logformat
    from icevault.server.app import create_app
    from icevault.server.listener import (
        ListenerSettings,
        bind,
        default_max_connections,
        raise_open_file_limit,
    )
    from icevault.server.listener import serve as serve_app
    from icevault.store.paths import DataDirInUseError, hold_data_dir

    logformat.configure(log_level, log_format)
    try:
        delays = parse_tier_delays(tier_delays)
    except ValueError as exc:
        raise StartupError(f"invalid --tier-delays: {exc}") from None
    settings = ServerSettings(
        host=host,
        port=port,
        data_dir=data_dir,
        auth=auth,
        region=region,
        tier_delays_s={**ServerSettings().tier_delays_s, **delays},
        inventory_delay_s=inventory_delay,
        job_expiry_s=job_expiry,
        upload_expiry_s=upload_expiry,
        metadata_url=metadata_url,
        blob_url=blob_url,
        notification_url=notification_url,
        webhook_allow_private=webhook_allow_private,
        tls_cert=tls_cert,
        tls_key=tls_key,
        io_timeout_s=io_timeout,
        min_rate=min_rate,
        body_threads=body_threads,
        idle_timeout_s=idle_timeout,
        max_connections=max_connections,
        cache_ttl_s=cache_ttl,
        job_lease_s=job_lease,
        scrub_interval_s=scrub_interval,
        scrub_rate=None if scrub_rate is None else scrub_rate * 1e6,
        orphan_grace_s=orphan_grace,
        orphan_sweep_interval_s=orphan_sweep_interval,
        metrics=metrics,
        metrics_token_file=metrics_token_file,
        test_controls=test_controls,
        faults=_load_faults(faults_file, test_controls),
    )
    if notification_url is not None and not notification_url.startswith(("http://", "https://")):
        raise StartupError(f"--notification-url must be an http(s) URL, not {notification_url!r}")
    ssl_context = None
    if (tls_cert is None) != (tls_key is None):
        raise StartupError("--tls-cert and --tls-key go together")
    if tls_cert is not None and tls_key is not None:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_context.load_cert_chain(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise StartupError(f"cannot load --tls-cert/--tls-key: {exc}") from None
    lifecycle = logging.getLogger(logformat.LIFECYCLE)
    if auth == "off":
        lifecycle.warning(
            "--auth off: requests are not authenticated; anyone who can reach %s:%s can read "
            "and delete every archive. Use it for local testing only.", host, port)
    started = False
    bound_port = port

    def announce() -> None:
        # The port actually bound (with --port 0, one the system chose): whoever started the
        # server reads it here, with no race for a port picked in advance.
        nonlocal started
        started = True
        url = f"{'https' if ssl_context else 'http'}://{host}:{bound_port}"
        lifecycle.info("icevault serving the Glacier API on %s (data in %s)", url, data_dir,
                       extra={"event": "listening", "url": url, "data_dir": str(data_dir)})

    try:
        open_files = raise_open_file_limit()
        listener = ListenerSettings(
            host=host, port=port, idle_timeout_s=idle_timeout,
            max_connections=max_connections or default_max_connections(open_files),
            ssl_context=ssl_context,
        )
        # Bound first: a port in use fails before anything is written to the data directory.
        sock = bind(host, port)
        bound_port = sock.getsockname()[1]
        if metadata_url is None or blob_url is None:
            # Kept for the process's life: the kernel drops it when the process ends.
            lock = hold_data_dir(data_dir)  # noqa: F841
        asyncio.run(serve_app(create_app(settings, listening=(host, bound_port)), listener,
                              sock, ready=announce))
    except DataDirInUseError as exc:
        raise StartupError(str(exc)) from None
    except Exception as exc:
        if started:
            raise
        # A start-up failure is the operator's to fix: one line, not a traceback.
        raise StartupError(f"cannot start: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
