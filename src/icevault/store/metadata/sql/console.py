"""Console sessions ended early, and failed sign-ins (see :class:`ConsolePort`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from icevault.store.metadata import schema as t
from icevault.store.metadata.base import ConsolePort
from icevault.store.metadata.sql.engine import SqlEngine


class ConsoleRows(SqlEngine, ConsolePort):
    def end_sessions(self, subject: str, ended_at: int, keep_until: int) -> None:
        table = t.console_session_ends
        insert = (sqlite.insert if self._is_sqlite else postgresql.insert)(table)
        with self._tx(write=True) as conn:
            conn.execute(insert.values(subject=subject, ended_at=ended_at, keep_until=keep_until)
                         .on_conflict_do_update(index_elements=[table.c.subject], set_={
                             "ended_at": func.max(table.c.ended_at, ended_at) if self._is_sqlite
                             else func.greatest(table.c.ended_at, ended_at),
                             "keep_until": func.max(table.c.keep_until, keep_until)
                             if self._is_sqlite else func.greatest(table.c.keep_until,
                                                                   keep_until)}))

    def sessions_ended_at(self, subjects: Sequence[str]) -> int | None:
        table = t.console_session_ends
        with self._tx() as conn:
            found = conn.execute(select(func.max(table.c.ended_at)).where(
                table.c.subject.in_(list(subjects)))).scalar()
        return None if found is None else int(found)

    def note_sign_in_failure(self, subjects: Sequence[str], now: int, window_ms: int) -> None:
        table = t.sign_in_failures
        stale = table.c.window_start <= now - window_ms
        with self._tx(write=True) as conn:
            for subject in subjects:
                insert = (sqlite.insert if self._is_sqlite else postgresql.insert)(table)
                conn.execute(insert.values(subject=subject, window_start=now, failures=1)
                             .on_conflict_do_update(index_elements=[table.c.subject], set_={
                                 "window_start": case((stale, now), else_=table.c.window_start),
                                 "failures": case((stale, 1), else_=table.c.failures + 1)}))

    def sign_in_failures(self, subjects: Sequence[str], since: int) -> int:
        table = t.sign_in_failures
        with self._tx() as conn:
            found = conn.execute(select(func.max(table.c.failures)).where(
                table.c.subject.in_(list(subjects)), table.c.window_start > since)).scalar()
        return 0 if found is None else int(found)

    def forget_console_state(self, now: int, window_ms: int) -> None:
        with self._tx(write=True) as conn:
            conn.execute(delete(t.console_session_ends).where(
                t.console_session_ends.c.keep_until < now))
            conn.execute(delete(t.sign_in_failures).where(
                t.sign_in_failures.c.window_start <= now - window_ms))
