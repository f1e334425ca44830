"""The public entry point: :class:`Keyspace`, one object per Redis client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from . import batch, inventory, members, search, upgrade, vectors
from .aggregate import Aggregation, Result
from .capabilities import Capabilities, probe
from .changes import ChangeCap
from .connection import call, check_client
from .durability import Durability
from .errors import Contention
from .keyring import Keys
from .listing import Page
from .locks import Locks
from .oplog import OpLogs
from .plan import Plan
from .prepared import AuthorizedCreate
from .profiles import Profiles
from .query import Query
from .querying import Queries
from .replica import ReplicaReads
from .reproject import Reprojected, reproject
from .schema import EntitySpec, Schema, SingletonSpec
from .scripts import AuthReply, CommitResult, Scripts
from .sealing import Sealer
from .singletons import Singletons
from .store import MAX_ATTEMPTS, Documents, Guard, PreparedCreate, Stored, Upserted
from .systems.multiframe.entities import ANALYTICS, MULTIFRAME, SYSTEM_CONFIG
from .tokens import Authorization, Limits, Tokens


class Keyspace:
    """Typed async access to the MultiFrame keyspace.

    ``client`` must be a ``redis.asyncio.Redis`` created with
    ``decode_responses=False`` (revisions hash the exact stored bytes). Call
    :meth:`setup` once before use. ``use_search=False`` forces the scan path even
    when the module is present. ``reader`` (a replica's client, keyspace.connect_replica)
    answers the pure reads (:meth:`read`, :meth:`list`, :meth:`aggregate`, :meth:`nearest`)
    unless they ask to be ``fresh``; everything else, and every read inside a write or an
    authorization, goes to ``client`` (docs/scaling.md, "Replicas and Sentinel").
    ``durability`` (keyspace.durability) makes writes wait for replicas to confirm them.
    """

    def __init__(
        self,
        client: Redis,
        schema: Schema = MULTIFRAME,
        *,
        use_search: bool | None = None,
        reader: Redis | None = None,
        durability: Durability | None = None,
        changes_cap: ChangeCap | None = None,
    ) -> None:
        check_client(client)
        self.client = client
        self.reader = client if reader is None else reader
        check_client(self.reader)
        self.replica = ReplicaReads(client, self.reader)  # with its fallback to the primary
        self.schema = schema
        # The one runner of its scripts, shared; commits trim the change feed to changes_cap.
        self.scripts = Scripts(client, durability, changes_cap)
        # The keys of sensitive fields (keyspace.keyring); no sealer until :meth:`unlock`.
        self.keys = Keys(self.scripts, schema)
        self.documents = Documents(client, self.scripts, schema, self.keys)
        self._reads = Documents(self.reader, self.scripts, schema, self.keys)  # its get() only
        self.singletons = Singletons(client, self.scripts, schema.names)
        self.tokens = Tokens(self.scripts, schema)
        self.locks = Locks(self.scripts)  # entities declaring lock=Lockable(...)
        self.oplogs = OpLogs(self.scripts)  # entities declaring oplog=OpLog(...)
        self.profiles = Profiles(client, self.scripts, schema)  # entities declaring profile
        self._use_search = use_search
        self.capabilities = Capabilities(json=True, search=False)
        self._pending: dict[str, EntitySpec] = {}  # entity prefix -> spec; see setup_basics
        # Lists, aggregations and nearness searches; they refuse the indexes in _pending.
        self.queries = Queries(
            client, self.replica, self.documents, self._pending, lambda: self.capabilities.search
        )

    async def setup(self, *, index_timeout: float | None = 60.0) -> Capabilities:
        """Detect modules, create the singletons' defaults and build or keep the indexes;
        waits up to ``index_timeout`` per new index version (None: as long as it takes)."""
        await self.setup_basics()
        await self.upgrade_indexes(timeout=index_timeout)
        return self.capabilities

    async def setup_basics(self) -> Capabilities:
        """The quick part of :meth:`setup`, whatever the data size: modules, singletons, and
        which indexes need a new version (:attr:`pending_indexes`, built by
        :meth:`upgrade_indexes`; their lists answer ``IndexUnavailable`` until then)."""
        found = await probe(self.client, self.schema.names.probe_key())
        if not found.json:
            raise RuntimeError("the Redis server lacks the RedisJSON module (JSON.* commands)")
        use = found.search if self._use_search is None else (self._use_search and found.search)
        self.capabilities = Capabilities(json=True, search=use)
        for single in self.schema.singletons:
            await self.singletons.ensure(single)
        if use:
            # A server that fails a timed-out query lets a list try the index for a moment
            # before reading a ranking (keyspace.ranking); one that returns part of it cannot.
            self.queries.bounded = await search.fail_on_timeout(self.client)
            for spec in self.schema.entities:
                if await upgrade.needs_upgrade(self.client, spec):
                    self._pending[spec.prefix] = spec
        return self.capabilities

    async def unlock(self, key: bytes | None, *, create: bool = True) -> Sealer | None:
        """Use ``key`` (None: none configured) for the sensitive fields: the keyring is read
        (and, with ``create``, made on a keyspace that has none); KeyringError when the key
        cannot serve this keyspace, before anything is written. Returns the sealer (None:
        encryption off). See docs/encryption.md."""
        return await self.keys.unlock(key, create=create)

    @property
    def sealer(self) -> Sealer | None:
        return self.keys.sealer

    @property
    def pending_indexes(self) -> list[str]:
        """Collections whose index still needs its current version (see :meth:`setup_basics`)."""
        return [spec.collection for spec in self._pending.values()]

    async def upgrade_indexes(
        self, *, timeout: float | None = None, progress: upgrade.Progress | None = None
    ) -> None:
        """Reproject and build every pending index, each leaving :attr:`pending_indexes` once
        its alias moved. Also picks up entities a concurrent :meth:`setup_basics` added."""
        while self._pending:
            spec = next(iter(self._pending.values()))
            await upgrade.upgrade(
                self.client, self.scripts, spec, timeout=timeout, progress=progress
            )
            self._pending.pop(spec.prefix, None)

    async def forget_built(self) -> None:
        """Drop from :attr:`pending_indexes` what another process has built meanwhile."""
        for spec in list(self._pending.values()):
            if not await upgrade.needs_upgrade(self.client, spec):
                self._pending.pop(spec.prefix, None)

    @property
    def degraded(self) -> bool:
        return self.capabilities.degraded

    def entity(self, name: str) -> EntitySpec:
        return self.schema.entity(name)

    # Documents ----------------------------------------------------------------------------

    async def create(self, spec: EntitySpec, data: Any) -> Stored:
        return await self.documents.create(spec, data)

    def prepare_create(self, spec: EntitySpec, data: Any) -> PreparedCreate:
        return self.documents.prepare_create(spec, data)

    async def authorized_create(
        self, prepared: PreparedCreate, token: str, limits: Limits, allowed: str, window: int
    ) -> AuthorizedCreate:
        """Authorize ``token`` for a write and, when allowed, commit ``prepared``, in one
        round trip. ``allowed`` is the one non-admin user id who may create it ('' for
        admins only); any other caller's create is refused as ``forbidden``. A non-admin's
        explicit id may raise its counter at most ``window`` past the counter's value
        (:class:`OutsideImportWindow` otherwise)."""
        scripts, asked = self.scripts, prepared
        for _ in range(MAX_ATTEMPTS):
            ready = await self.documents.ready(asked)

            async def send(
                auth: Authorization, ready: PreparedCreate = ready
            ) -> tuple[AuthReply, CommitResult | None]:
                spec, plan, doc_id = ready.spec, ready.plan, ready.doc_id
                args = (auth.keys, auth.args, allowed, window, plan)
                return await scripts.authorized_commit(*args, spec=spec, doc_id=doc_id)

            decision, result = await self.tokens.run(token, "write", limits, send)
            following = (
                await self.documents.again(asked, ready, result) if result is not None else None
            )
            if following is None:
                holder = await self.documents.holder(ready, result) if result is not None else None
                return AuthorizedCreate(decision, result, ready, holder)
            asked = following  # a rotation, or a counter id taken since it was read
        raise Contention(f"could not find a free {prepared.spec.name} id; retry")

    async def create_many(
        self, spec: EntitySpec, items: Sequence[Any], *, window: int | None = None
    ) -> list[Stored]:
        """Create every one of ``items`` (at most ``batch.MAX_ITEMS``), all or none, in one
        script call; the documents in order, or BatchRefused naming each refused item's
        index (keyspace.batch). ``window``: as for :meth:`authorized_create`."""
        return await batch.create_many(self.documents, spec, items, window=window)

    async def get(self, spec: EntitySpec, doc_id: str) -> Stored:
        """The document from the primary, or NotFound (for what a write then depends on)."""
        return await self.documents.get(spec, doc_id)

    async def read(self, spec: EntitySpec, doc_id: str) -> Stored:
        """The document from the reader (a replica under ``MULTIFRAME_READ_FROM=replica``:
        possibly a write or two behind the primary), or NotFound. A pure read only."""
        return await self.replica.run(lambda client: self.get_on(client, spec, doc_id))

    async def get_on(self, client: Redis, spec: EntitySpec, doc_id: str) -> Stored:
        """The document from ``client``: :attr:`client` or :attr:`reader`."""
        return await (self.documents if client is self.client else self._reads).get(spec, doc_id)

    async def replace(
        self,
        spec: EntitySpec,
        doc_id: str,
        data: Any,
        *,
        if_revision: str | None = None,
        guard: Guard | None = None,
    ) -> Stored:
        return await self.documents.replace(
            spec, doc_id, data, if_revision=if_revision, guard=guard
        )

    async def upsert(
        self,
        spec: EntitySpec,
        doc_id: str,
        data: Any,
        *,
        if_revision: str | None = None,
        guard: Guard | None = None,
        create_guard: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> Upserted:
        """Replace the document, or create it under ``doc_id`` when missing (an entity
        declaring ``upsert``); ``Upserted.created`` tells which (keyspace.store)."""
        return await self.documents.upsert(
            spec,
            doc_id,
            data,
            if_revision=if_revision,
            guard=guard,
            create_guard=create_guard,
        )

    async def patch(
        self,
        spec: EntitySpec,
        doc_id: str,
        changes: Any,
        *,
        if_revision: str | None = None,
        guard: Guard | None = None,
    ) -> Stored:
        return await self.documents.patch(
            spec, doc_id, changes, if_revision=if_revision, guard=guard
        )

    async def delete(
        self,
        spec: EntitySpec,
        doc_id: str,
        *,
        if_revision: str | None = None,
        guard: Callable[[dict[str, Any]], None] | None = None,
    ) -> int:
        return await self.documents.delete(spec, doc_id, if_revision=if_revision, guard=guard)

    async def list(
        self,
        spec: EntitySpec,
        query: Query,
        *,
        fresh: bool = False,
        paths: Sequence[str] | None = None,
    ) -> Page:
        """One page of documents matching ``query`` (see :mod:`keyspace.query`), from the
        reader unless ``fresh`` (then from the primary: an answer that will be cached).
        ``paths``: the index path reads only those (and what the query needs) of each
        document; items may then hold more than ``paths`` (keyspace.sparse projects them)."""
        return await self.queries.list(spec, query, fresh=fresh, paths=paths)

    async def aggregate(
        self, spec: EntitySpec, aggregation: Aggregation, *, fresh: bool = False
    ) -> Result:
        """The groups and metrics of ``aggregation`` over ``spec`` (keyspace.aggregate), from
        the reader unless ``fresh``."""
        return await self.queries.aggregate(spec, aggregation, fresh=fresh)

    async def nearest(
        self,
        spec: EntitySpec,
        vector: object,
        k: int = vectors.DEFAULT_K,
        filter: Query | None = None,
    ) -> Sequence[vectors.Scored]:
        """The ``k`` documents of ``spec`` nearest ``vector`` (a list of its vector field's
        ``dim`` numbers) among those passing ``filter`` (a list query's filters; its sort,
        limit and cursor are ignored), each with its cosine distance rounded to
        :data:`keyspace.vectors.DIGITS` places: nearest first, ties by id, documents whose
        vector is null or all zeros left out (:mod:`keyspace.vectors`). ValidationFailed for
        a vector of another length, with non-finite members or all zeros, ``k`` outside 1 to
        :data:`keyspace.vectors.MAX_K`, or a time range in ``filter``."""
        return await self.queries.nearest(spec, vector, k, filter)

    # Prepared plans (operations tooling) ---------------------------------------------------

    async def commit(self, plan: Plan, *, durable: bool = True) -> CommitResult:
        """Apply a prepared ``plan`` atomically in one ``commit.lua`` call: the result names
        the check that refused it, if any (nothing written then). Paused, NotDurable and a
        lost reply (the plan may have run) raise as for Scripts.commit; sent once."""
        return await self.scripts.commit(plan, durable=durable)

    async def commit_batch(self, plans: Sequence[Plan]) -> Sequence[CommitResult]:
        """:meth:`commit` for many plans in one pipeline (bulk loading), results in order;
        each plan is its own atomic commit."""
        return await self.scripts.commit_batch(plans)

    async def send_batch(self, plans: Sequence[Plan]) -> Awaitable[Sequence[CommitResult]]:
        """:meth:`commit_batch` in two steps: returns once the batch is sent, with what reads
        its results (Scripts.send_batch: which batches may interleave)."""
        return await self.scripts.send_batch(plans)

    async def reproject(
        self, spec: EntitySpec, progress: Callable[[int], None] | None = None
    ) -> Reprojected:
        """Bring ``spec``'s search projections in line with its documents
        (:mod:`keyspace.reproject`); ``progress`` gets the count checked so far."""
        return await reproject(self.client, self.scripts, spec, progress)

    async def has_documents(self, spec: EntitySpec) -> bool:
        """Whether any document of ``spec`` exists; asks the keys, never an index."""
        return await inventory.any_document(self.client, spec)

    # Array membership (collab collaborators) ----------------------------------------------

    async def add_member(
        self,
        spec: EntitySpec,
        doc_id: str,
        field: str,
        member: str,
        *,
        if_revision: str | None = None,
        guard: Guard | None = None,
    ) -> Stored:
        """Add ``member`` to the array ``field`` once; adding a present member changes nothing."""
        edit = members.adding(spec, field, member)
        return await self.documents.update(spec, doc_id, edit, if_revision, guard)

    async def remove_member(
        self,
        spec: EntitySpec,
        doc_id: str,
        field: str,
        member: str,
        *,
        if_revision: str | None = None,
        guard: Guard | None = None,
    ) -> Stored:
        """Remove ``member`` from the array ``field``; NotFound when it is not there."""
        edit = members.removing(spec, doc_id, field, member)
        return await self.documents.update(spec, doc_id, edit, if_revision, guard)

    async def reference_owners(
        self, spec: EntitySpec, doc: Mapping[str, Any]
    ) -> dict[str, str | None]:
        """For each single reference of ``doc`` to an entity that has owners (other than the
        users themselves), the owner of the document it names (None: missing or ownerless),
        in one pipelined read; no I/O when there is none."""
        return await members.reference_owners(self.client, self.schema, spec, doc)

    # Singletons -----------------------------------------------------------------------------

    @property
    def settings_spec(self) -> SingletonSpec:
        """The singleton holding ``system.maintenance`` and ``system.mode`` (MultiFrame's
        ``config:system``, else the system's ``mf:settings``)."""
        return next(s for s in self.schema.singletons if s.maintenance)

    async def get_settings(self) -> Stored:
        return await self.singletons.get(self.settings_spec)

    async def replace_settings(self, data: Any, *, if_revision: str | None = None) -> Stored:
        return await self.singletons.replace(self.settings_spec, data, if_revision=if_revision)

    async def patch_settings(self, changes: Any, *, if_revision: str | None = None) -> Stored:
        return await self.singletons.patch(self.settings_spec, changes, if_revision=if_revision)

    async def get_config(self) -> Stored:
        return await self.singletons.get(SYSTEM_CONFIG)

    async def replace_config(self, data: Any, *, if_revision: str | None = None) -> Stored:
        return await self.singletons.replace(SYSTEM_CONFIG, data, if_revision=if_revision)

    async def patch_config(self, changes: Any, *, if_revision: str | None = None) -> Stored:
        return await self.singletons.patch(SYSTEM_CONFIG, changes, if_revision=if_revision)

    async def get_metrics(self) -> Stored:
        return await self.singletons.get(ANALYTICS)

    async def replace_metrics(self, data: Any, *, if_revision: str | None = None) -> Stored:
        return await self.singletons.replace(ANALYTICS, data, if_revision=if_revision)

    async def get_chip_metrics(self, chip_id: str) -> dict[str, Any]:
        return await self.singletons.get_chip(ANALYTICS, chip_id)

    async def set_chip_metrics(self, chip_id: str, metrics: Any) -> dict[str, Any]:
        return await self.singletons.set_chip(ANALYTICS, chip_id, metrics)

    # Health -----------------------------------------------------------------------------------

    async def needs_setup(self) -> bool:
        """True when something :meth:`setup` creates is gone (a singleton's default, an index
        alias): the server restarted empty or was flushed. One round trip."""
        singletons = [single.key for single in self.schema.singletons]
        async with self.client.pipeline(transaction=False) as pipe:
            # EXISTS needs a key, and a system may have no singletons: then it counts the
            # probe key, which no one writes (0 of 0 wanted).
            pipe.exists(*(singletons or [self.schema.names.probe_key()]))
            if self.capabilities.search:
                for spec in self.schema.entities:
                    if spec.prefix not in self._pending:  # being built, not lost
                        pipe.execute_command("FT.INFO", spec.names.index_alias(spec.prefix))
            present, *indexes = await pipe.execute(raise_on_error=False)
        if isinstance(present, Exception):
            raise present
        return present != len(singletons) or any(isinstance(i, ResponseError) for i in indexes)

    async def readiness(self) -> dict[str, Any]:
        """Redis reachable, modules present, every index built; raises on an unreachable server."""
        await self.client.ping()
        found = await probe(self.client, self.schema.names.probe_key())
        indexes: dict[str, bool] = {}
        if self.capabilities.search:
            for spec in self.schema.entities:
                if spec.prefix in self._pending:
                    indexes[spec.collection] = False
                    continue
                try:
                    info = search.parse_info(
                        await call(self.client, "FT.INFO", spec.names.index_alias(spec.prefix))
                    )
                    indexes[spec.collection] = not search.is_building(info)
                    if indexes[spec.collection]:
                        self.queries.index_ready(spec)
                except ResponseError:
                    indexes[spec.collection] = False
        ready = (
            found.json and (found.search or not self.capabilities.search) and all(indexes.values())
        )
        report = {
            "ready": ready and not self.keys.stranded,
            "json": found.json,
            "search": found.search,
            "degraded": self.degraded,
            "indexes": indexes,
        }
        if self.keys.stranded:  # it can no longer seal or open: docs/encryption.md
            report["encryption"] = self.keys.stranded
        # A replica that cannot answer leaves the service ready: reads go to the primary.
        if (replica := await self.replica.state()) is not None:
            report["replica"] = replica
            report["replica_fallbacks"] = self.replica.fallbacks
        return report
