"""The top-level ``icevault`` command group."""

from __future__ import annotations

import click

from icevault import __version__
from icevault.cli.admin import admin
from icevault.cli.commands import COMMANDS
from icevault.cli.common import Settings, group_global_options
from icevault.cli.serve import serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="icevault")
@group_global_options
@click.pass_context
def cli(ctx: click.Context, endpoint_url: str | None, profile: str | None, region: str | None,
        output: str | None) -> None:
    """icevault: a self-hosted archive store that speaks the Amazon S3 Glacier API, and a client
    that retrieves and downloads archives safely.

    \b
    Exit codes: 0 success; 1 error; 2 bad usage; 3 verification failed (tree hash or size);
    4 job not ready, failed, expired or not found; 130 interrupted (rerun to resume).
    """
    ctx.obj = Settings(endpoint_url, profile, region, output or "json")


cli.add_command(serve)
cli.add_command(admin)
for command in COMMANDS:
    cli.add_command(command)


def main() -> None:
    cli(prog_name="icevault")
