"""The AWS CLI's global options, shared by the top-level group and every client command.

Kept apart from ``common`` so that ``icevault serve`` starts without importing botocore.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

GLOBAL_OPTIONS = ("endpoint_url", "profile", "region", "output")


@dataclass
class Settings:
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    output: str = "json"


def _output_format(_ctx: click.Context, _param: click.Parameter,
                   value: str | None) -> str | None:
    if value is None or value in ("json", "table"):
        return value
    raise click.BadParameter(
        f"{value!r} is not an output format (json or table); did you mean -o/--output-file "
        f"{value}?")


def _global_option_decorators(hidden: bool = False) -> list[Callable[[F], F]]:
    return [
        click.option("--endpoint-url", default=None, hidden=hidden,
                     help="Glacier endpoint, e.g. http://127.0.0.1:9099."),
        click.option("--profile", default=None, hidden=hidden,
                     help="AWS profile from the shared config files."),
        click.option("--region", default=None, hidden=hidden,
                     help="AWS region (default: from the profile or AWS_*)."),
        click.option("--output", default=None, callback=_output_format, hidden=hidden,
                     help="Output format: json (the default) or table, as in the AWS CLI. "
                          "A file to write is -o/--output-file."),
    ]


def ignored_global_options(func: F) -> F:
    """For commands that use no network: the global options are accepted (a script may pass
    them to every command) but neither listed nor used."""
    for decorate in reversed(_global_option_decorators(hidden=True)):
        func = decorate(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for name in GLOBAL_OPTIONS:
            kwargs.pop(name)
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def global_options(func: F) -> F:
    """Accept the AWS CLI's global options after the subcommand too, as the AWS CLI does."""
    for decorate in reversed(_global_option_decorators()):
        func = decorate(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        settings: Settings = ctx.find_object(Settings) or Settings()
        for name in GLOBAL_OPTIONS:
            value = kwargs.pop(name)
            if value is not None:
                setattr(settings, name, value)
        ctx.obj = settings
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def group_global_options(func: F) -> F:
    for decorate in reversed(_global_option_decorators()):
        func = decorate(func)
    return func
