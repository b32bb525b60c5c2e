"""The top-level ``icevault`` command group."""

from __future__ import annotations

import click

from icevault import __version__
from icevault.cli.admin import admin
from icevault.cli.serve import serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="icevault")
def cli() -> None:
    """icevault: a self-hosted archive store that speaks the Amazon S3 Glacier API."""


cli.add_command(serve)
cli.add_command(admin)


def main() -> None:
    cli(prog_name="icevault")
