"""The README's quickstart works as written (against a server on a free port)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support import ServerProcess

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart_env(server: ServerProcess) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(server.credentials_file),
        AWS_PROFILE="icevault",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
    )
    return env


def test_readme_quickstart(fresh_server: ServerProcess) -> None:
    text = README.read_text()
    exports = re.search(r"^export (.+)$", text, re.MULTILINE)
    assert exports is not None
    assert exports.group(1) == (
        "AWS_SHARED_CREDENTIALS_FILE=$PWD/icevault-data/credentials AWS_PROFILE=icevault "
        "AWS_DEFAULT_REGION=us-east-1"
    )
    fresh_server.start()
    assert oct(fresh_server.credentials_file.stat().st_mode & 0o777) == "0o600"
    code = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert code is not None
    script = code.group(1).replace("http://127.0.0.1:9099", fresh_server.url)
    run = subprocess.run([sys.executable, "-c", script], env=quickstart_env(fresh_server),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert re.fullmatch(r"[0-9a-f]{64}\n", run.stdout)
    for line in re.findall(r"^\.venv/bin/aws (.+)$", text, re.MULTILINE):
        args = line.replace("http://127.0.0.1:9099", fresh_server.url).split()
        aws = Path(sys.executable).with_name("aws")
        result = subprocess.run([str(aws), *args], env=quickstart_env(fresh_server),
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (line, result.stderr)


def test_every_docs_page_is_reachable_from_the_readme_and_links_resolve() -> None:
    docs = README.parent / "docs"
    linked = set(re.findall(r"\]\(docs/([a-z-]+\.md)\)", README.read_text()))
    assert linked == {path.name for path in docs.glob("*.md")}
    assert len(README.read_text().splitlines()) <= 150  # a front page
    for page in [README, *docs.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), (page.name, target)
        for anchor in re.findall(r"\]\(#([^)]+)\)", page.read_text()):
            headings = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
                        for h in re.findall(r"^#+ (.+)$", page.read_text(), re.MULTILINE)}
            assert anchor in headings, (page.name, anchor)
