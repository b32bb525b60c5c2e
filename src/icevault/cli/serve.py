"""``icevault serve``: run the Glacier-compatible server."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import Field
from pathlib import Path
from typing import Any

import click

from icevault.config import (
    Flag,
    ServerSettings,
    default_text,
    envvar_name,
    option_fields,
    option_name,
    parse_duration,
    parse_size,
    parse_tier_delays,
)
from icevault.core.faults import Fault
from icevault.core.models import Tier


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


def _parsed(parse: Callable[[str], Any], minimum: int | None = None) -> Any:
    def callback(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            parsed = parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        if minimum is not None and parsed < minimum:
            raise click.BadParameter(f"must be at least {minimum}")
        return parsed
    return callback


def _copy_urls(_ctx: click.Context, _param: click.Parameter,
               value: tuple[str, ...]) -> tuple[str, ...]:
    from icevault.stores import parse_copy_url

    try:
        names = [parse_copy_url(url).name for url in value]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if len(set(names)) != len(names):
        raise click.BadParameter("the same store is named twice")
    return tuple(value)


def _with_default_delays(text: str) -> dict[Tier, float]:
    return {**ServerSettings().tier_delays_s, **parse_tier_delays(text)}


def _click_option(settings_field: Field[Any], flag: Flag) -> Callable[[Any], Any]:
    """One setting as a click option: its flag, its environment variable, its help with the
    default as a user types it, and its parser."""
    shown = default_text(settings_field, flag)
    kwargs: dict[str, Any] = {
        "envvar": envvar_name(settings_field),
        "show_envvar": True,
        "help": flag.help + (f"  [default: {shown}]" if shown is not None else ""),
    }
    default = getattr(ServerSettings(), settings_field.name)
    if flag.kind == "bool":
        kwargs.update(is_flag=True, default=default)
    elif flag.kind in ("duration", "size", "tiers"):
        parse = {"duration": parse_duration, "size": parse_size,
                 "tiers": _with_default_delays}[flag.kind]
        kwargs.update(default=shown if default is not None else None,
                      callback=_parsed(parse, flag.minimum),
                      metavar={"duration": "DURATION", "size": "SIZE",
                               "tiers": "TIER=DURATION,..."}[flag.kind])
    elif flag.kind == "int":
        kwargs.update(default=default, type=click.IntRange(flag.minimum, flag.maximum))
    elif flag.kind == "float":
        kwargs.update(default=default, type=click.FloatRange(flag.minimum, flag.maximum))
    elif flag.kind == "choice":
        kwargs.update(default=default, type=click.Choice(flag.choices))
    elif flag.kind in ("dir", "file", "existing-file"):
        kwargs.update(default=default, type=click.Path(
            file_okay=flag.kind != "dir", dir_okay=flag.kind == "dir",
            exists=flag.kind == "existing-file", path_type=Path))
    elif flag.multiple:
        kwargs.update(multiple=True, default=default, callback=_copy_urls)
    else:
        kwargs.update(default=default)
    return click.option(f"--{option_name(settings_field)}", settings_field.name, **kwargs)


def _settings_options(command: Callable[..., None]) -> Callable[..., None]:
    for settings_field, flag in reversed(option_fields()):
        command = _click_option(settings_field, flag)(command)
    return command


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
@_settings_options
@click.option(
    "--faults", "faults_file", default=None, envvar="ICEVAULT_FAULTS", show_envvar=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Fault rules (a JSON list) in force from the start; needs --test-controls.",
)
def serve(faults_file: Path | None, **values: Any) -> None:
    """Run the Glacier-compatible server."""
    from icevault.server import logformat

    settings = ServerSettings(**values,
                              faults=_load_faults(faults_file, values["test_controls"]))
    logformat.configure(settings.log_level, settings.log_format)
    if settings.notification_url is not None and not settings.notification_url.startswith(
            ("http://", "https://")):
        raise StartupError("--notification-url must be an http(s) URL, not "
                           f"{settings.notification_url!r}")
    if settings.hot_days is not None and not settings.copy_urls:
        raise StartupError("--hot-days needs at least one --copy-url store to keep the bytes")
    if settings.copies_before_ack > len(settings.copy_urls):
        raise StartupError(f"--copies-before-ack {settings.copies_before_ack} needs as many "
                           f"--copy-url stores; {len(settings.copy_urls)} given")
    from icevault.stores import check_store_places

    try:
        check_store_places(settings.data_dir, settings.blob_url, settings.copy_urls)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    ssl_context = _ssl_context(settings)
    lifecycle = logging.getLogger(logformat.LIFECYCLE)
    if settings.auth == "off":
        lifecycle.warning(
            "--auth off: requests are not authenticated; anyone who can reach %s:%s can read "
            "and delete every archive. Use it for local testing only.", settings.host,
            settings.port)
    _run(settings, ssl_context, lifecycle)


def _ssl_context(settings: ServerSettings) -> ssl.SSLContext | None:
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise StartupError("--tls-cert and --tls-key go together")
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"cannot load --tls-cert/--tls-key: {exc}") from None
    return context


def _run(settings: ServerSettings, ssl_context: ssl.SSLContext | None,
         lifecycle: logging.Logger) -> None:
    from icevault.server.app import create_app
    from icevault.server.listener import (
        ListenerSettings,
        bind,
        default_max_connections,
        raise_open_file_limit,
    )
    from icevault.server.listener import serve as serve_app
    from icevault.service.ownership import StoreOwnedElsewhereError
    from icevault.store.paths import DataDirInUseError, hold_data_dir

    host = settings.host
    started = False
    bound_port = settings.port

    def announce() -> None:
        # The port actually bound (with --port 0, one the system chose): whoever started the
        # server reads it here, with no race for a port picked in advance.
        nonlocal started
        started = True
        url = f"{'https' if ssl_context else 'http'}://{host}:{bound_port}"
        lifecycle.info("icevault serving the Glacier API on %s (data in %s)", url,
                       settings.data_dir,
                       extra={"event": "listening", "url": url,
                              "data_dir": str(settings.data_dir)})

    try:
        open_files = raise_open_file_limit()
        listener = ListenerSettings(
            host=host, port=settings.port, idle_timeout_s=settings.idle_timeout_s,
            max_connections=settings.max_connections or default_max_connections(open_files),
            ssl_context=ssl_context,
        )
        # Bound first: a port in use fails before anything is written to the data directory.
        sock = bind(host, settings.port)
        bound_port = sock.getsockname()[1]
        if settings.metadata_url is None or settings.blob_url is None:
            # Kept for the process's life: the kernel drops it when the process ends.
            lock = hold_data_dir(settings.data_dir)  # noqa: F841
        asyncio.run(serve_app(create_app(settings, listening=(host, bound_port)), listener,
                              sock, ready=announce))
    except (DataDirInUseError, StoreOwnedElsewhereError) as exc:
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
