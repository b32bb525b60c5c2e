"""Where a harness works: the directory it is given, kept; or a new temporary one, removed
once the run ends well. Each crash or cluster run writes megabytes to gigabytes, and the
test suite runs a slice of each: left behind every time, they fill a machine's disk."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

Report = TypeVar("Report")


def run_in_work_dir(given: str | Path | None, prefix: str, run: Callable[[Path], Report],
                    failed: Callable[[Report], bool] = lambda report: False) -> Report:
    """``run(directory)``: in ``given`` (created if need be, always kept), or in a new
    temporary directory that is removed afterwards, unless the run raised or ``failed``
    says its report is a failure; then it is kept for a look at what the servers left, and
    its path is told on stderr."""
    if given is not None:
        work = Path(given)
        work.mkdir(parents=True, exist_ok=True)
        return run(work)
    work = Path(tempfile.mkdtemp(prefix=prefix))
    keep = True
    try:
        report = run(work)
        keep = failed(report)
        return report
    finally:
        if keep:
            print(f"work directory kept for inspection: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def problems_found(report: dict[str, Any]) -> bool:
    """For the harnesses whose report lists its ``problems``."""
    return bool(report.get("problems"))
