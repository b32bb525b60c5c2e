"""Account settings (the data retrieval policy) and provisioned capacity."""

from __future__ import annotations

from sqlalchemy import (
    delete,
    func,
    insert,
    select,
)

from icevault.core.models import (
    CapacityUnit,
)
from icevault.store.metadata import schema as t
from icevault.store.metadata.base import AccountPort
from icevault.store.metadata.sql.engine import SqlEngine


class AccountRows(SqlEngine, AccountPort):
    # -- account settings and capacity ----------------------------------------------------
    def get_account_setting(self, account_id: str, key: str) -> str | None:
        with self._tx() as conn:
            return conn.execute(
                select(t.account_settings.c.value).where(
                    t.account_settings.c.account_id == account_id, t.account_settings.c.key == key
                )
            ).scalar()

    def set_account_setting(self, account_id: str, key: str, value: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                delete(t.account_settings).where(
                    t.account_settings.c.account_id == account_id, t.account_settings.c.key == key
                )
            )
            conn.execute(insert(t.account_settings).values(account_id=account_id, key=key, value=value))

    def purchase_capacity(self, account_id: str, unit: CapacityUnit, now: int, max_units: int) -> bool:
        """Add a unit unless ``max_units`` unexpired units exist."""
        with self._tx(write=True) as conn:
            active = conn.execute(
                select(func.count()).select_from(t.provisioned_capacity).where(
                    t.provisioned_capacity.c.account_id == account_id,
                    t.provisioned_capacity.c.expires_at > now,
                )
            ).scalar_one()
            if active >= max_units:
                return False
            conn.execute(
                insert(t.provisioned_capacity).values(
                    id=unit.id, account_id=account_id, start_at=unit.start_at,
                    expires_at=unit.expires_at,
                )
            )
            return True

    def list_capacity(self, account_id: str) -> list[CapacityUnit]:
        with self._tx() as conn:
            rows = conn.execute(
                select(t.provisioned_capacity)
                .where(t.provisioned_capacity.c.account_id == account_id)
                .order_by(t.provisioned_capacity.c.start_at)
            )
            return [CapacityUnit(r.id, r.start_at, r.expires_at) for r in rows]
