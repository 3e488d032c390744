"""Every statement the backend runs, built once per backend so SQLAlchemy's compiled cache serves every call.

All but two are portable SQL; the insert and the purge come from the database family (``_dialects.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Delete,
    Insert,
    Select,
    Table,
    Update,
    bindparam,
    delete,
    func,
    select,
    update,
)

if TYPE_CHECKING:
    from ._dialects import DialectOps


class Statements:
    """The statements on one sessions table; parameters are bound by name (``k``, ``now``, ``payload``, ...)."""

    def __init__(self, table: Table, ops: DialectOps, purge_batch_size: int) -> None:
        c = table.c
        now = bindparam("now", type_=BigInteger())
        live = c.expires_at > now
        expired: ColumnElement[bool] = c.expires_at <= now
        key = c.key == bindparam("k")
        self.columns = (c.key, c.payload, c.user_id, c.created_at, c.expires_at, c.version)
        self.read: Select[Any] = select(*self.columns).where(key, live)
        #: Whether a live row holds the key (and its version): tells a conflict from a missing record.
        self.version: Select[Any] = select(c.version).where(key, live)
        self.update: Update = (
            update(table)
            .where(key, c.version == bindparam("expected"), live)
            .values(payload=bindparam("payload"), user_id=bindparam("user_id"),
                    expires_at=bindparam("expires_at"), version=c.version + 1)
        )
        self.touch: Update = update(table).where(key, live).values(expires_at=bindparam("expires_at"))
        self.delete: Delete = delete(table).where(key, live)
        self.list_by_user: Select[Any] = select(*self.columns).where(c.user_id == bindparam("user_id"), live)
        self.delete_by_user: Delete = delete(table).where(c.user_id == bindparam("user_id"), live)
        values = {"key": bindparam("k"), "payload": bindparam("payload"), "user_id": bindparam("user_id"),
                  "created_at": bindparam("created_at"), "expires_at": bindparam("expires_at"), "version": 1}
        self.insert: Insert = ops.insert(table, values, expired)
        #: Claims an expired row for a new record, where the insert cannot (see ``DialectOps.create``).
        self.takeover: Update = update(table).where(key, expired).values(
            {name: value for name, value in values.items() if name != "key"})
        self.purge: Delete = ops.purge(table, expired, purge_batch_size)
        #: Live and expired rows at ``now``, each counted through the expiry index.
        self.counts: Select[Any] = select(select(func.count()).select_from(table).where(live).scalar_subquery(),
                                          select(func.count()).select_from(table).where(expired).scalar_subquery())
        self._table, self._ops, self._expired, self._batch = table, ops, expired, purge_batch_size
        self._purges: dict[int, Delete] = {purge_batch_size: self.purge}

    def purge_of(self, limit: int) -> Delete:
        """The purge of at most ``limit`` rows, built once per limit (a tool uses one or two)."""
        statement = self._purges.get(limit)
        if statement is None:
            if len(self._purges) > 16:  # bounded, whatever limits a caller tries
                self._purges = {self._batch: self.purge}
            statement = self._purges[limit] = self._ops.purge(self._table, self._expired, limit)
        return statement
