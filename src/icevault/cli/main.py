"""The top-level ``icevault`` command group."""

from __future__ import annotations

import importlib

import click

from icevault import __version__
from icevault.cli.options import Settings, group_global_options

# Subcommands are imported when used: ``icevault serve`` must not pay for botocore and the
# client, nor ``icevault download`` for the server (a test server starts in under a second).
# This is click's documented lazy-loading pattern for a group.
_LAZY = {
    "serve": "icevault.cli.serve:serve",
    "admin": "icevault.cli.admin:admin",
    "migrate": "icevault.cli.migrate:migrate",
    **{name: f"icevault.cli.commands:{name}" for name in (
        "vault", "upload", "retrieve", "jobs", "download", "get", "inventory", "treehash",
        "verify",
    )},
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _LAZY.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="icevault")
@group_global_options
@click.pass_context
def cli(ctx: click.Context, endpoint_url: str | None, profile: str | None, region: str | None,
        output: str | None) -> None:
    """icevault: a self-hosted archive store that speaks the Amazon S3 Glacier API, and a client
    that retrieves and downloads archives safely.

    \b
    Exit codes: 0 success; 1 refused or failed (no such vault or archive, access denied);
    2 bad usage; 3 verification failed (tree hash or size); 4 a job not ready, failed,
    expired or not found; 130 interrupted (rerun to resume).
    """
    ctx.obj = Settings(endpoint_url, profile, region, output or "json")


def main() -> None:
    cli(prog_name="icevault")
