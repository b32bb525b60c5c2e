"""What the tests need from the system, beside the Python packages: Debian's PostgreSQL,
HAProxy and headless Chromium with its driver.

``scripts/run-tests`` installs them where it can (as root, or through sudo). Where one is
missing the tests that drive it are skipped, each with one line naming the package, and the
run ends with a summary of what was skipped (see ``conftest.py``). CI sets
``ICEVAULT_REQUIRE_SYSTEM=1``, which turns those skips into failures: CI never skips one."""

from __future__ import annotations

import glob
import os
import shutil

import pytest

REQUIRE_ENV = "ICEVAULT_REQUIRE_SYSTEM"
MARK = "needs the Debian package"  # how the summary finds these skips


def require(package: str, present: bool, what: str) -> None:
    """Skip the calling test (fail it, under ``ICEVAULT_REQUIRE_SYSTEM=1``) unless
    ``present``."""
    if present:
        return
    message = (f"{MARK} {package} ({what} not found); `scripts/run-tests` installs it when "
               "run as root or with sudo")
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def postgres_bindir() -> str | None:
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    matches = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(matches[-1]) if matches else None


def require_postgres() -> str:
    bindir = postgres_bindir()
    require("postgresql", bindir is not None, "initdb and pg_ctl")
    assert bindir is not None
    return bindir


def haproxy_path() -> str | None:
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)


def require_haproxy() -> str:
    path = haproxy_path()
    require("haproxy", path is not None, "haproxy")
    assert path is not None
    return path


def require_chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if os.access("/usr/bin/chromedriver", os.X_OK) else None)
    require("chromium", browser is not None, "chromium")
    require("chromium-driver", driver is not None, "chromedriver")
    assert browser is not None and driver is not None
    return browser, driver
