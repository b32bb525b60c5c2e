"""A warm launcher: ``icevault serve`` processes forked from an interpreter that has already
imported the server, so a test's server starts in a fraction of a second.

Most of a cold ``icevault serve`` start is Python importing aiohttp and SQLAlchemy (about
0.6 s on a small machine). This process pays that once; for each request it forks, and the
child runs the ``icevault serve`` command itself with the arguments given, its output going
to the log file given. The launcher has started no thread when it forks (imports only), so
the child is an ordinary single-threaded server process.

Protocol, one JSON object per line: the kit writes ``{"args": [...], "log": PATH}`` to the
launcher's standard input and reads ``{"pid": N}`` (or ``{"error": TEXT}``) back. The
launcher reaps its children as they exit. When its standard input closes (the test process
ended, however it ended), it stops every server it started and exits.

Run it as ``python -m icevault.testing.launcher``; :func:`icevault.testing.server.launch`
starts and uses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from types import FrameType


def _reap(_signum: int = 0, _frame: FrameType | None = None) -> None:
    with contextlib.suppress(ChildProcessError):
        while True:
            pid, _status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            _children.discard(pid)


_children: set[int] = set()


def _serve_in_child(args: list[str], log_path: str, env: dict[str, str]) -> None:
    """In the forked child: become ``icevault serve ARGS`` with output to ``log_path``."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # The launcher's pipes are descriptors 0 and 1: replacing them cuts the child off.
        null = os.open(os.devnull, os.O_RDONLY)
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        for fd in (null, log):
            if fd > 2:
                os.close(fd)
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        from icevault.cli.main import cli
        from icevault.config import without_settings

        # The requester's environment, not the launcher's (which is as old as the launcher).
        kept = without_settings(env or dict(os.environ))
        os.environ.clear()
        os.environ.update(kept)
        cli.main(args=["serve", *args], prog_name="icevault")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001 - the child must never return into the launcher loop
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    os._exit(code)


def main() -> None:
    # Everything the children need, imported once here (this is the point of the launcher).
    import icevault.cli.main
    import icevault.cli.serve
    import icevault.server.app
    import icevault.server.listener  # noqa: F401

    signal.signal(signal.SIGCHLD, _reap)
    requests = sys.stdin.buffer
    replies = sys.stdout
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    for line in requests:
        try:
            request = json.loads(line)
            args = [str(a) for a in request["args"]]
            log_path = str(request["log"])
            env = {str(k): str(v) for k, v in dict(request.get("env") or {}).items()}
        except (ValueError, KeyError, TypeError) as exc:
            replies.write(json.dumps({"error": f"bad request: {exc}"}) + "\n")
            replies.flush()
            continue
        replies.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _serve_in_child(args, log_path, env)
        _children.add(pid)
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
    # The test process is gone or done: nothing it started may outlive it.
    for pid in list(_children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while _children and time.monotonic() < deadline:
        _reap()
        time.sleep(0.05)
    for pid in list(_children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
