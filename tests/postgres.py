"""A throwaway PostgreSQL server for the tests: initdb into a temporary directory, listening on a
Unix socket there, stopped at the end. Needs PostgreSQL's server binaries (Debian: postgresql)."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.system import require_postgres

_names = itertools.count()


class PostgresServer:
    def __init__(self) -> None:
        self.bindir = Path(require_postgres())  # skips (or fails, in CI) without it
        self.root = Path(tempfile.mkdtemp(prefix="icevault-pg-"))
        self.port = 5432
        self._as_postgres = os.geteuid() == 0  # the server refuses to run as root

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", "postgres",
                  "--locale=C.UTF-8", "-E", "UTF8")
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "log"), "-w",
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses='' -c fsync=off",
                  "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.root}&port={self.port}"

    def new_database(self) -> str:
        import psycopg

        name = f"icevault_{os.getpid()}_{next(_names)}"
        with psycopg.connect(host=str(self.root), port=self.port, user="postgres",
                             dbname="postgres", autocommit=True) as conn:
            # A locale-aware (ICU) collation, as production databases often have, so tests
            # show that ordering the spec defines in ASCII does not depend on it.
            conn.execute(f"CREATE DATABASE \"{name}\" LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                         "TEMPLATE template0")
        return self.url(name)

    def pause(self) -> None:
        """Stop the server, keeping its data (an outage)."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start it again on the same data, socket and port."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "log"), "-w",
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses='' -c fsync=off",
                  "start")

    def stop(self) -> None:
        try:
            with contextlib.suppress(subprocess.CalledProcessError):  # paused already
                self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
