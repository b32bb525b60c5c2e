"""A missing system package skips the tests that need it, with one line naming it; under
ICEVAULT_REQUIRE_SYSTEM=1 (CI) the same is a failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.system import MARK, REQUIRE_ENV, require

ROOT = Path(__file__).resolve().parents[2]


def test_a_missing_package_skips_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require("haproxy", False, "haproxy")
    assert f"{MARK} haproxy" in str(skipped.value)
    require("haproxy", True, "haproxy")  # present: nothing happens


def test_ci_turns_the_skip_into_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        require("chromium-driver", False, "chromedriver")
    assert f"{MARK} chromium-driver" in str(failed.value)


def test_the_summary_lists_what_was_skipped(pytester: pytest.Pytester,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the project's tests package
    pytester.makeconftest(
        "from tests.conftest import pytest_terminal_summary  # noqa: F401\n")
    pytester.makepyfile(test_needs="""
        from tests.system import require

        def test_one():
            require("haproxy", False, "haproxy")

        def test_two():
            require("haproxy", False, "haproxy")

        def test_three():
            require("chromium", False, "chromium")
    """)
    result = pytester.runpytest_subprocess("-p", "no:icevault",
                                           f"--rootdir={pytester.path}")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*skipped for missing system packages*",
                                 "chromium: 1 tests (apt-get install chromium)",
                                 "haproxy: 2 tests (apt-get install haproxy)"])
