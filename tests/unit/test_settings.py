"""One settings model: every option of ``icevault serve`` comes from a field of
ServerSettings, with its default written once and an ICEVAULT_* variable, and the services'
timings are derived from the same fields."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import click
import pytest

from icevault.cli.serve import serve
from icevault.config import ServerSettings, envvar_name, option_fields
from icevault.core.models import Tier
from icevault.service.context import Context, Timing

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def parse(args: list[str]) -> dict[str, Any]:
    with serve.make_context("serve", args) as ctx:
        return dict(ctx.params)


def test_with_no_options_the_command_gives_the_models_defaults() -> None:
    params = parse([])
    params.pop("faults_file")
    assert ServerSettings(**params) == ServerSettings()


def test_every_option_has_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICEVAULT_JOB_EXPIRY", "48h")
    monkeypatch.setenv("ICEVAULT_METADATA_URL", "postgresql+psycopg://u:secret@db/icevault")
    monkeypatch.setenv("ICEVAULT_WEBHOOK_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("ICEVAULT_SCRUB_RATE", "50MiB")
    monkeypatch.setenv("ICEVAULT_TIER_DELAYS", "bulk=5h")
    params = parse(["--job-lease", "3s"])
    assert params["job_expiry_s"] == 48 * 3600.0
    assert params["metadata_url"] == "postgresql+psycopg://u:secret@db/icevault"
    assert params["webhook_allow_private"] is True
    assert params["scrub_rate"] == 50 * 1024**2
    assert params["tier_delays_s"] == {Tier.EXPEDITED: 0.0, Tier.STANDARD: 0.0,
                                       Tier.BULK: 5 * 3600.0}
    assert params["job_lease_s"] == 3.0


def test_the_command_line_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICEVAULT_PORT", "9001")
    assert parse(["--port", "9002"])["port"] == 9002
    assert parse([])["port"] == 9001


def test_a_bad_value_in_the_environment_names_its_option(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICEVAULT_IO_TIMEOUT", "soon")
    with pytest.raises(click.UsageError) as refused:
        parse([])
    assert refused.value.format_message() == (
        "Invalid value for '--io-timeout' (env var: 'ICEVAULT_IO_TIMEOUT'): invalid duration "
        "'soon' (examples: 30, 30s, 15m, 24h, 2d)")


def test_every_setting_but_the_internal_ones_is_an_option() -> None:
    named = {f.name for f, _ in option_fields()}
    internal = {f.name for f in fields(ServerSettings)} - named
    assert internal == {"maintenance_interval_s", "workers", "faults"}
    assert {envvar_name(f) for f, _ in option_fields()} >= {
        "ICEVAULT_HOST", "ICEVAULT_PORT", "ICEVAULT_DATA_DIR", "ICEVAULT_METADATA_URL",
        "ICEVAULT_BLOB_URL", "ICEVAULT_JOB_EXPIRY", "ICEVAULT_CACHE_TTL"}


def test_the_services_timing_is_derived_from_the_settings() -> None:
    timing = Context(meta=None, blobs=None).timing  # type: ignore[arg-type]
    defaults = ServerSettings()
    assert timing == Timing.of(defaults)
    assert timing.job_expiry_ms == defaults.job_expiry_s * 1000
    assert timing.cache_ttl_ms == defaults.cache_ttl_s * 1000
    assert timing.job_lease_ms == defaults.job_lease_s * 1000
    slow = Timing.of(ServerSettings(job_expiry_s=3600.0, tier_delays_s={Tier.BULK: 2.5}))
    assert slow.job_expiry_ms == 3_600_000
    assert slow.tier_delays_ms == {Tier.EXPEDITED: 0, Tier.STANDARD: 0, Tier.BULK: 2500}


def test_the_systemd_unit_keeps_settings_off_the_command_line() -> None:
    """Variables expanded into ExecStart are visible to every user through ps (a database
    password in the metadata URL); the unit passes them in the environment instead."""
    unit = (DEPLOY / "systemd" / "icevault@.service").read_text()
    exec_start = next(line for line in unit.replace("\\\n", " ").splitlines()
                      if line.startswith("ExecStart="))
    assert "$" not in exec_start
    assert "EnvironmentFile=/etc/icevault/%i.env" in unit
