"""MongoDB backend on PyMongo's native async API (``pymongo.AsyncMongoClient``, PyMongo 4.14+).

One document per session, in one collection::

    {
      "_id":        "<storage key>",          # the hash of the token, never the token
      "payload":    BinData(0, ...),          # opaque bytes
      "user_id":    "<user id>",              # absent for anonymous sessions (sparse index)
      "created_ms": NumberLong(...),          # ms since the Unix epoch, UTC
      "expires_ms": NumberLong(...),          # ms since the Unix epoch, UTC: decides liveness
      "expires_at": ISODate(...),             # when the server may remove it, for the TTL index
      "version":    1
    }

Every filter judges liveness on ``expires_ms`` against the ``now`` each call
passes (the manager's clock; the backend's ``clock`` when a call passes none).
``expires_at`` only feeds the TTL index (``expireAfterSeconds=0``), which lets
the server reclaim expired documents by itself about once a minute, by its own
clock: so it is written as the system time plus the time the record has left
at ``now`` (``expires_at - now``), never as the logical deadline, and a manager
clock hours away from the server's neither loses live documents nor keeps dead
ones for long. Both are written together by every write. Keeping the integer
authoritative makes liveness exact to the millisecond and identical on every
server that speaks the wire protocol (see docs/backends/mongodb.md for the
stand-in that mangles dates written by ``$set``).

Writes are single conditional operations: ``create`` is an upsert filtered on
"expired", so a live document makes the insert collide on ``_id`` (duplicate
key, mapped to ``SessionExists``); ``update`` is one ``update_one`` filtered on
key, version and liveness. Keys, user ids and payloads are only ever values
(never field names or operators) and are type-checked, so ``{"$ne": None}``
cannot become a query.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit, urlunsplit

from bson.codec_options import CodecOptions
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure, PyMongoError

from .._core.clock import Clock, utc_now
from .._core.contract import BaseSessionBackend
from .._core.records import RecordCounts, SessionRecord
from .._core.registry import mask_url
from ..errors import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    SessionConflict,
    SessionExists,
    SessionNotFound,
)

__all__ = ["DEFAULT_CLIENT_OPTIONS", "DEFAULT_COLLECTION", "DEFAULT_DATABASE", "MongoBackend", "from_url"]

DEFAULT_DATABASE = "fastapi_sessions"
DEFAULT_COLLECTION = "sessions"
#: What a client built from a URL gets unless the URL or a keyword sets it (names are case-insensitive).
#: ``timeoutMS`` bounds each operation as a whole: server selection, pool wait, connect, retry and reply.
#: PyMongo's own defaults wait 30 s for a server and forever for a reply.
DEFAULT_CLIENT_OPTIONS: dict[str, Any] = {
    "timeoutMS": 5000,
    "connectTimeoutMS": 5000,
    "serverSelectionTimeoutMS": 5000,
}
#: Set when the application chose per-step timeouts instead of ``timeoutMS`` (which would override
#: them): then each step that it left unset is bounded on its own, the reply included.
_STEP_DEFAULTS: dict[str, Any] = {"connectTimeoutMS": 5000, "serverSelectionTimeoutMS": 5000,
                                  "socketTimeoutMS": 5000}
_STEPS = frozenset({"connecttimeoutms", "sockettimeoutms", "serverselectiontimeoutms", "waitqueuetimeoutms"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# Index option conflicts: an index of that name or key exists with other options.
_INDEX_CONFLICT_CODES = frozenset({85, 86})
Document = dict[str, Any]
_CODEC: CodecOptions[Document] = CodecOptions(tz_aware=True, tzinfo=UTC)


def _ms(value: datetime) -> int:
    """Milliseconds since the epoch, floored like a BSON date; naive means UTC (as in PyMongo)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MS


def _dt(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _ttl_date(expires_at: datetime, now: datetime) -> datetime:
    # The TTL monitor compares with the server's clock: it must see the time left at `now`.
    return utc_now() + (expires_at - now)


def _str(value: object, what: str) -> str:
    # A dict here would turn a literal match into a query ({"$ne": None} matches everyone).
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return value


def _check_record(record: SessionRecord) -> None:
    _str(record.key, "session key")
    if record.user_id is not None:
        _str(record.user_id, "user_id")
    if not isinstance(record.payload, bytes):
        raise TypeError(f"payload must be bytes, not {type(record.payload).__name__}")


def _record(doc: Mapping[str, Any]) -> SessionRecord:
    return SessionRecord(
        doc["_id"], doc["payload"], doc.get("user_id"), _dt(doc["created_ms"]), _dt(doc["expires_ms"]), doc["version"]
    )


class MongoBackend(BaseSessionBackend):
    """Sessions in a MongoDB collection, through ``pymongo.AsyncMongoClient``.

    Give it a URL (``mongodb://…`` or ``mongodb+srv://…``; the path names the
    database) or a ``client`` the application already has; ``database`` and
    ``collection`` override the defaults. A client passed in is not closed by
    :meth:`aclose`, one built from a URL is. Other keyword arguments go to
    ``AsyncMongoClient`` (for example ``serverSelectionTimeoutMS``); a client
    built from a URL gets :data:`DEFAULT_CLIENT_OPTIONS` (every operation
    bounded by 5 s) unless the URL or a keyword sets them; if the application
    sets a per-step timeout (``serverSelectionTimeoutMS``, ...) but not
    ``timeoutMS``, every step it left unset gets 5 s instead.

    The TTL index on ``expires_at``, the sparse index on ``user_id`` and the
    index on ``expires_ms`` (for :meth:`purge_expired`) are created on first
    use (idempotent); call :meth:`ensure_indexes` at startup to fail early, or
    pass ``create_indexes=False`` when the database user may not create
    indexes (then create them as docs/backends/mongodb.md shows). ``clock``
    judges liveness for calls that pass no ``now`` (the manager always passes
    its own).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: AsyncMongoClient[Document] | None = None,
        database: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        create_indexes: bool = True,
        clock: Clock = utc_now,
        **client_options: Any,
    ) -> None:
        if (url is None) == (client is None):
            raise ConfigurationError("MongoBackend needs exactly one of a URL or a client")
        if not collection:
            raise ConfigurationError("MongoBackend needs a collection name")
        if client is None:
            assert url is not None
            self._where = mask_url(url)
            url, url_database, url_collection = _split_url(url)
            database = database or url_database
            if url_collection is not None and collection == DEFAULT_COLLECTION:
                collection = url_collection
            given = {name.lower() for name in client_options} | _query_names(url)
            defaults = DEFAULT_CLIENT_OPTIONS if "timeoutms" in given or not given & _STEPS else _STEP_DEFAULTS
            for name, value in defaults.items():
                if name.lower() not in given:
                    client_options[name] = value
            try:
                client = AsyncMongoClient(url, **client_options)
            except (PyMongoError, ValueError) as exc:  # a malformed URI or option; never echo the password
                raise ConfigurationError(f"bad MongoDB URL {self._where}: {type(exc).__name__}") from None
            self._owns_client = True
        else:
            if client_options:
                raise ConfigurationError("client options apply only when the backend builds the client")
            self._where = "the given client"
            self._owns_client = False
        self.client: AsyncMongoClient[Document] = client
        if not database:
            try:
                database = client.get_default_database().name  # the client URL's path, if any
            except PyMongoError:
                database = DEFAULT_DATABASE
        self.database_name = database
        self.collection_name = collection
        # Our own codec options, whatever the client's: dates come back aware UTC.
        self.collection: AsyncCollection[Document] = client[database].get_collection(collection, codec_options=_CODEC)
        self._indexes_ready = not create_indexes
        self._clock = clock
        self._closed = False

    # -- internals ---------------------------------------------------------------------------

    def _fail(self, exc: PyMongoError, action: str) -> NoReturn:
        """Map a driver error at the boundary; the driver's message stays on ``__cause__``."""
        if isinstance(exc, ConnectionFailure) or exc.timeout:
            message = f"MongoDB ({self._where}) unavailable during {action}: {type(exc).__name__}"
            raise BackendUnavailable(message, backend="mongodb", operation=action) from exc
        code = getattr(exc, "code", None)
        detail = f" (code {code})" if code is not None else ""
        raise BackendError(f"MongoDB ({self._where}) failed during {action}: {type(exc).__name__}{detail}",
                           backend="mongodb", operation=action) from exc

    async def _ready(self) -> AsyncCollection[Document]:
        if not self._indexes_ready:
            await self.ensure_indexes()
        return self.collection

    async def ensure_indexes(self) -> None:
        """Create the TTL index on ``expires_at`` and the ``user_id`` and ``expires_ms`` indexes, if missing.

        Idempotent (createIndexes with identical specs is a no-op), so concurrent
        first requests may all run it. An existing index of the same name with other
        options is a ``ConfigurationError``: the server would not change it for us.
        """
        try:
            await self.collection.create_index("expires_at", name="expires_at_ttl", expireAfterSeconds=0)
            await self.collection.create_index("user_id", name="user_id", sparse=True)
            await self.collection.create_index("expires_ms", name="expires_ms")
        except OperationFailure as exc:
            if exc.code in _INDEX_CONFLICT_CODES:
                raise ConfigurationError(
                    f"collection {self.database_name}.{self.collection_name} has an index that conflicts with "
                    f"fastapi-sessions' indexes (code {exc.code}); drop it or use another collection"
                ) from exc
            self._fail(exc, "index creation")
        except PyMongoError as exc:
            self._fail(exc, "index creation")
        self._indexes_ready = True

    @staticmethod
    def _fields(record: SessionRecord, version: int, now: datetime) -> dict[str, Any]:
        """The update document that writes ``record``: one ``$set``, plus ``$unset`` for no user."""
        fields: dict[str, Any] = {
            "payload": record.payload,
            "expires_ms": _ms(record.expires_at),
            "expires_at": _ttl_date(record.expires_at, now),
            "version": version,
        }
        if record.user_id is None:
            return {"$set": fields, "$unset": {"user_id": ""}}
        fields["user_id"] = record.user_id
        return {"$set": fields}

    # -- the contract ------------------------------------------------------------------------

    async def create(self, record: SessionRecord, *, now: datetime | None = None) -> None:
        _check_record(record)
        now = now or self._clock()
        update = self._fields(record, 1, now)
        update["$set"]["created_ms"] = _ms(record.created_at)
        collection = await self._ready()
        try:
            # Matches only an expired document of that key (replaced in place); otherwise the
            # upsert inserts with _id=key, and a live document makes that a duplicate key.
            await collection.update_one({"_id": record.key, "expires_ms": {"$lte": _ms(now)}}, update, upsert=True)
        except DuplicateKeyError:
            raise SessionExists(key=record.key, operation="create") from None
        except PyMongoError as exc:
            self._fail(exc, "create")

    async def read(self, key: str, *, now: datetime | None = None) -> SessionRecord | None:
        _str(key, "session key")
        collection = await self._ready()
        try:
            doc = await collection.find_one({"_id": key, "expires_ms": {"$gt": _ms(now or self._clock())}})
        except PyMongoError as exc:
            self._fail(exc, "read")
        return None if doc is None else _record(doc)

    async def update(self, record: SessionRecord, expected_version: int, *, now: datetime | None = None) -> int:
        _check_record(record)
        version = expected_version + 1
        collection = await self._ready()
        now = now or self._clock()
        live = {"$gt": _ms(now)}
        try:
            result = await collection.update_one(
                {"_id": record.key, "version": expected_version, "expires_ms": live},
                self._fields(record, version, now),
            )
            if result.matched_count:
                return version
            # Lost: say why. Gone or expired is not-found (no resurrection), else a conflict.
            current = await collection.find_one({"_id": record.key, "expires_ms": live}, {"version": 1})
        except PyMongoError as exc:
            self._fail(exc, "update")
        if current is None:
            raise SessionNotFound(key=record.key, operation="update")
        raise SessionConflict(key=record.key, operation="update")

    async def touch(self, key: str, expires_at: datetime, *, now: datetime | None = None) -> bool:
        _str(key, "session key")
        collection = await self._ready()
        now = now or self._clock()
        try:
            result = await collection.update_one(
                {"_id": key, "expires_ms": {"$gt": _ms(now)}},
                {"$set": {"expires_ms": _ms(expires_at), "expires_at": _ttl_date(expires_at, now)}},
            )
        except PyMongoError as exc:
            self._fail(exc, "touch")
        return result.matched_count == 1

    async def delete(self, key: str, *, now: datetime | None = None) -> bool:
        _str(key, "session key")
        collection = await self._ready()
        try:
            # An expired leftover is not a live record: the TTL monitor (or purge) takes it.
            result = await collection.delete_one({"_id": key, "expires_ms": {"$gt": _ms(now or self._clock())}})
        except PyMongoError as exc:
            self._fail(exc, "delete")
        return result.deleted_count == 1

    async def list_by_user(self, user_id: str, *, now: datetime | None = None) -> list[SessionRecord]:
        _str(user_id, "user_id")
        collection = await self._ready()
        try:
            live = {"$gt": _ms(now or self._clock())}
            docs = await collection.find({"user_id": user_id, "expires_ms": live}).to_list()
        except PyMongoError as exc:
            self._fail(exc, "list_by_user")
        return [_record(doc) for doc in docs]

    async def delete_by_user(self, user_id: str, *, now: datetime | None = None) -> int:
        _str(user_id, "user_id")
        collection = await self._ready()
        try:
            live = {"$gt": _ms(now or self._clock())}
            result = await collection.delete_many({"user_id": user_id, "expires_ms": live})
        except PyMongoError as exc:
            self._fail(exc, "delete_by_user")
        return result.deleted_count

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        """Remove the documents expired at ``now``, through the ``expires_ms`` index (cost follows what expired).

        The server's TTL monitor removes them too, so the count is what this call
        removed, not everything that expired.
        """
        collection = await self._ready()
        try:
            result = await collection.delete_many({"expires_ms": {"$lte": _ms(now or self._clock())}})
        except PyMongoError as exc:
            self._fail(exc, "purge_expired")
        return result.deleted_count

    async def purge_expired_batch(self, limit: int, *, now: datetime | None = None) -> int:
        """Remove at most ``limit`` documents expired at ``now``: their ids through the index, then one delete."""
        collection, expired = await self._ready(), {"expires_ms": {"$lte": _ms(now or self._clock())}}
        try:
            ids = [doc["_id"] async for doc in collection.find(expired, {"_id": 1}, limit=max(limit, 1))]
            # The filter again: a document extended in between is live, and stays.
            return 0 if not ids else (await collection.delete_many({"_id": {"$in": ids}, **expired})).deleted_count
        except PyMongoError as exc:
            self._fail(exc, "purge_expired")

    async def count_records(self, *, now: datetime | None = None) -> RecordCounts:
        """Live and expired documents at ``now`` (two counts through the ``expires_ms`` index)."""
        collection, cut = await self._ready(), _ms(now or self._clock())
        try:
            live = await collection.count_documents({"expires_ms": {"$gt": cut}})
            expired = await collection.count_documents({"expires_ms": {"$lte": cut}})
        except PyMongoError as exc:
            self._fail(exc, "count_records")
        return RecordCounts(live, expired)

    async def aclose(self) -> None:
        """Close the client if this backend built it; a client passed in stays open."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self.client.close()


def _query_names(url: str) -> set[str]:
    """The URL's option names, lower-cased (PyMongo reads them case-insensitively)."""
    query = urlsplit(url).query
    return {option.partition("=")[0].lower() for option in query.split("&") if option}


def _split_url(url: str) -> tuple[str, str | None, str | None]:
    """``(url for PyMongo, database, collection)``: the path names the database, and the
    query option ``collection`` is ours, removed so PyMongo never sees (or warns about) it.
    Other options are kept byte for byte."""
    parts = urlsplit(url)
    if parts.scheme not in ("mongodb", "mongodb+srv"):
        raise ConfigurationError(f"not a MongoDB URL: {mask_url(url)}")
    database = unquote(parts.path.lstrip("/")) or None
    collection = None
    kept = []
    for option in parts.query.split("&") if parts.query else ():
        name, _, value = option.partition("=")
        if name == "collection":
            collection = unquote(value)
        else:
            kept.append(option)
    return urlunsplit(parts._replace(query="&".join(kept))), database, collection


def from_url(url: str, *, clock: Clock = utc_now, **options: Any) -> MongoBackend:
    """Entry-point factory for ``mongodb://`` and ``mongodb+srv://``.

    The URL's path names the database (default ``fastapi_sessions``); the query
    option ``collection`` (default ``sessions``) is ours and is not passed to
    PyMongo; every other option is PyMongo's. Keyword options go to
    :class:`MongoBackend` (``database``, ``collection``, ``create_indexes``,
    ``clock``, and ``AsyncMongoClient`` options such as ``serverSelectionTimeoutMS``).
    """
    return MongoBackend(url, clock=clock, **options)
