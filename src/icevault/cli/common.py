"""What the client commands share: AWS-style global options, output, errors, progress."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from icevault.cli.options import Settings
from icevault.client.api import make_glacier_client
from icevault.client.exceptions import ClientError as TransferError
from icevault.client.progress import Subscriber
from icevault.config import parse_size
from icevault.core.text import escape

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_VERIFY = 3
EXIT_JOB = 4
EXIT_INTERRUPTED = 130

# Glacier errors that say the command's own words were wrong: bad usage, like a bad option.
_USAGE_CODES = frozenset({"InvalidParameterValueException", "MissingParameterValueException",
                          "SerializationException"})
_JOB_OPERATIONS = frozenset({"DescribeJob", "GetJobOutput"})


def exit_code_for(code: str | None, operation: str | None = None) -> int:
    """The documented exit code for a Glacier error: 2 for a parameter the command got
    wrong, 4 for a job that is gone (Glacier says ResourceNotFound for an expired one), 1
    for every other refusal or failure (access denied, no such vault or archive, the
    service unavailable)."""
    if code in _USAGE_CODES:
        return EXIT_USAGE
    if code == "ResourceNotFoundException" and operation in _JOB_OPERATIONS:
        return EXIT_JOB
    return EXIT_ERROR

def glacier_client(settings: Settings, workers: int = 10, *, retries: bool = True) -> Any:
    """botocore retries throttling and 5xx for ordinary calls; downloads ask for none, since
    they retry chunk by chunk themselves."""
    return make_glacier_client(
        endpoint_url=settings.endpoint_url, profile=settings.profile, region=settings.region,
        max_pool_connections=max(10, workers), retries=retries,
    )


def emit(settings: Settings, value: Any, columns: list[str] | None = None) -> None:
    """Print a result as JSON (default) or as a table.

    A table never cuts an ID, a hash or a date: one record is printed as ``key: value``
    lines, and a list's columns wrap rather than lose characters; only descriptions, which
    can be long prose, are shortened with an ellipsis."""
    if settings.output != "table":
        click.echo(json.dumps(value, indent=2, default=str))
        return
    if isinstance(value, dict):
        width = max((len(str(k)) for k in value), default=0)
        for key, item in value.items():
            text = json.dumps(item, default=str) if isinstance(item, dict | list) else item
            click.echo(f"{key:<{width}}  {'' if text is None else text}")
        return
    from rich.console import Console
    from rich.table import Table

    rows = list(value)
    keys = columns or sorted({k for row in rows for k in row})
    table = Table()
    for key in keys:
        if "Description" in key:
            table.add_column(key, overflow="ellipsis", no_wrap=True, max_width=40)
        else:
            table.add_column(key, overflow="fold")
    for row in rows:
        table.add_row(*("" if row.get(k) is None else str(row.get(k)) for k in keys))
    Console().print(table)


def size_option(name: str, default: str | None, help_text: str) -> Callable[[F], F]:
    def convert(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
        if value is None:
            return None
        try:
            return parse_size(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return click.option(name, default=default, callback=convert, show_default=True, help=help_text)


def handle_errors(func: F) -> F:
    """Turn failures into a message on stderr and a documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("interrupted; run the same command again to resume", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except TransferError as exc:
            click.echo(f"error: {escape(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            click.echo(escape(f"error: {error.get('Code')}: {error.get('Message')}"), err=True)
            sys.exit(exit_code_for(error.get("Code"), exc.operation_name))
        except NoCredentialsError:
            click.echo("error: no AWS credentials found (set AWS_PROFILE, AWS_ACCESS_KEY_ID or "
                       "--profile)", err=True)
            sys.exit(EXIT_ERROR)
        except (BotoCoreError, OSError) as exc:
            click.echo(f"error: {escape(str(exc))}", err=True)
            sys.exit(EXIT_ERROR)
        except ValueError as exc:
            click.echo(f"error: {escape(str(exc))}", err=True)
            sys.exit(EXIT_USAGE)

    return wrapper  # type: ignore[return-value]


def binary_size(size: float) -> str:
    """``size`` bytes in binary units: 512 B, 1.5 KiB, 8.0 MiB, 2.0 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class ProgressBar(Subscriber):
    """A rich progress bar with rate and ETA on stderr; silent when stderr is not a terminal."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.enabled = sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None

    def on_queued(self, **kwargs: Any) -> None:
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        # Binary units, as the size options take them (8MiB, 1GiB).
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            self.description, total=kwargs.get("total_bytes"), completed=kwargs.get("already", 0),
            rate="")

    def on_progress(self, **kwargs: Any) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, kwargs.get("bytes_transferred", 0))
            speed = self._progress.tasks[self._task].speed
            if speed:
                self._progress.update(self._task, rate=f"{binary_size(speed)}/s")

    def on_done(self, **kwargs: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
