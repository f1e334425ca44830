"""What one served system is, as data: its declarations, key namespace and user model.

A system (MultiFrame, NORMALDANCE, Engineering Forge...) is a declaration package under
``keyspace/systems/<name>/`` whose ``SYSTEM`` is a :class:`System`. The engine, the API and
the CLI take everything system-specific from here; nothing else names a system.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .aggregate import Aggregate
from .cache import CacheRules
from .keys import Names
from .migrations import Migration
from .migrations import check as check_migrations
from .schema import EntitySpec, Satellites, Schema
from .settings import SETTINGS
from .tokens import EndpointLimits
from .views import View

ADMIN = "admin"
MEMBER = "member"


def _no_admins(doc: Mapping[str, Any]) -> str:
    return MEMBER


@dataclass(frozen=True)
class System:
    """One system the engine can serve (``--system NAME``)."""

    name: str  # the --system / MULTIFRAME_SYSTEM name, e.g. "normaldance"
    title: str  # as the seed names it, e.g. "NORMALDANCE"
    schema: Schema
    # Default key namespace: every key of the system starts with it ("" keeps the seed's
    # exact keys, as MultiFrame does). Ends with ':' unless empty.
    namespace: str
    # The entity whose documents are the users that tokens belong to.
    principal: str
    # The role a user document gives its tokens: "admin" may do everything; any other role
    # is a member, who may write only documents it owns (EntitySpec.owner).
    role_of: Callable[[Mapping[str, Any]], str] = _no_admins
    # The user document's fields that decide its role (mirrored into its tokens when they
    # change) and the fields only admins may change on a user document.
    role_fields: tuple[str, ...] = ()
    admin_only_fields: tuple[str, ...] = ()
    # demo_data/<demo>/demo.json
    demo: str = ""
    # The admin user a first start creates (and prints an API key for) when no operator token
    # is configured and there are no users; None: the system has no admin users (only the
    # operator's MULTIFRAME_ADMIN_TOKEN administers it).
    admin_user: Mapping[str, Any] | None = None
    # entity name -> (array field of user ids, fields those users may change besides it):
    # members of a document who are not its owner (MultiFrame's collaborators).
    members: Mapping[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    # The collections whose list and relation answers are cached (keyspace.cache); None: no
    # answer is cached.
    cache: CacheRules | None = None
    # Per-user, per-endpoint request limits (the seed's rate_limit:{user_id}:{endpoint}),
    # checked besides the per-class limits every system has; None: none.
    rate_limits: EndpointLimits | None = None
    # Named aggregations (keyspace.aggregate) the system's routes serve; checked here.
    aggregates: tuple[Aggregate, ...] = ()
    # Declared migrations in version order (keyspace.migrations; `multiframe-admin migrate`).
    migrations: tuple[Migration, ...] = ()
    # Read routes beyond the collections' own (keyspace.views), and the cache TTL of each
    # view category (seconds; `cache.<category>=` in MULTIFRAME_TTL_SECONDS).
    views: tuple[View, ...] = ()
    cache_ttls: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.namespace == "" or self.namespace.endswith(":"), self.name
        self.schema.entity(self.principal)  # raises KeyError for an unknown principal
        named = [a.name for a in self.aggregates]
        assert len(named) == len(set(named)), f"{self.name}: an aggregate is declared twice"
        for declared in self.aggregates:
            declared.check(self.schema)
        check_migrations(self.migrations, self.schema)
        for view in self.views:
            view.check(self.schema, self.aggregates)
            assert view.category is None or view.category in self.cache_ttls, view.name
            # A cached answer is stored in Redis as served: it would hold opened plaintext.
            read = view.collections(self.aggregates) if view.category is not None else ()
            assert not any(self.schema.collection(c).sensitive for c in read), (
                f"{self.name}: the cached view {view.name} reads sensitive fields"
            )
            # A view answers every caller alike: it could not withhold a private field.
            private = [c for c in view.documents() if self.schema.collection(c).private_fields]
            assert not private, f"{self.name}: the view {view.name} reads private fields"
        for kind, seen in (
            ("name", [v.name for v in self.views]),
            ("path", [v.path for v in self.views]),
        ):
            assert len(seen) == len(set(seen)), f"{self.name}: a view {kind} is declared twice"
        for spec in self.schema.entities:
            # One cached profile answers every caller: it cannot hold what only admins read.
            shown = () if spec.profile is None else spec.profile.fields
            hidden = set(shown) & set(self.admin_only_fields) if spec is self.users else set()
            assert not hidden, f"{self.name}: the profile of {spec.name} shows admin-only {hidden}"

    @property
    def users(self) -> EntitySpec:
        return self.schema.entity(self.principal)

    def aggregate(self, name: str) -> Aggregate:
        """The declared aggregation ``name``; KeyError when there is none."""
        for declared in self.aggregates:
            if declared.name == name:
                return declared
        raise KeyError(name)

    def view_ttl(self, view: View) -> int | None:
        """Seconds ``view``'s answers are cached (None: never)."""
        return None if view.category is None else self.cache_ttls.get(view.category) or None

    def served(
        self,
        namespace: str | None = None,
        ttls: Mapping[str, int] | None = None,
        cache_ttl: int | None = None,
    ) -> System:
        """This system ready to serve: its user entity owning the tokens (their role derived
        by ``role_of``), every key under ``namespace`` (None: the declared default), and the
        expiring entities named in ``ttls`` (entity name -> seconds) expiring after those
        seconds instead of their declared TTL. ValueError for an entity that declares none.
        ``cache_ttl``: seconds cached answers are kept instead of the declared ones; 0: none
        (nor any profile, keyspace.profiles) is looked up or stored, while writes still move
        the versions (another process on the same server may cache). ValueError when the
        cache names an unknown or expiring collection."""
        names = Names(self.namespace if namespace is None else namespace)
        rules = self._cache_rules(cache_ttl)
        schema = self._with_ttls(ttls or {})
        if cache_ttl == 0:  # caching off: profiles computed on every read
            schema = replace(
                schema,
                entities=tuple(
                    replace(e, profile=replace(e.profile, cached=False))
                    if e.profile is not None
                    else e
                    for e in schema.entities
                ),
            )
        versioned = {c for v in self.views if v.category for c in v.collections(self.aggregates)}
        if rules is not None or versioned:
            cached = set(rules.collections if rules is not None else ()) | versioned
            schema = replace(
                schema,
                entities=tuple(
                    replace(e, cached=True) if e.collection in cached else e
                    for e in schema.entities
                ),
            )
        role_of = self.role_of

        def derive(doc: Mapping[str, Any]) -> Mapping[str, str]:
            return {"role": role_of(doc)}

        tokens = Satellites(watch=self.role_fields, derive=derive)
        entities = tuple(
            replace(e, satellites=e.satellites or tokens) if e.name == self.principal else e
            for e in schema.entities
        )
        singles = schema.singletons
        if schema.maintenance_key is None:  # maintenance and mode for every system
            singles = (*singles, SETTINGS)
        schema = replace(
            schema,
            entities=entities,
            singletons=singles,
            endpoint_limited=self.rate_limits is not None,
        ).bind(names)
        cache = None if rules is None or cache_ttl == 0 else rules
        return replace(
            self,
            schema=schema,
            namespace=names.namespace,
            cache=cache,
            cache_ttls=self._view_ttls(ttls or {}, cache_ttl),
        )

    def _view_ttls(self, ttls: Mapping[str, int], cache_ttl: int | None) -> dict[str, int]:
        if cache_ttl is not None:  # 0: caching off, every view computed on every read
            return dict.fromkeys(self.cache_ttls, cache_ttl)
        return {c: ttls.get(f"cache.{c}", s) for c, s in self.cache_ttls.items()}

    def _cache_rules(self, ttl: int | None) -> CacheRules | None:
        if ttl is not None and not 0 <= ttl <= MAX_TTL_SECONDS:
            raise ValueError(
                f"a cache TTL is a whole number of seconds from 0 (off) to {MAX_TTL_SECONDS}"
            )
        rules = self.cache
        if rules is None:
            return None
        by_collection = {e.collection: e for e in self.schema.entities}
        for name in rules.collections:
            if name not in by_collection:
                raise ValueError(f"{self.name} has no collection {name!r} to cache")
            if by_collection[name].expiry is not None:
                # An expiry changes its lists with no write to move the version.
                raise ValueError(f"{self.name}: {name} expires, so its lists cannot be cached")
        return rules if not ttl else replace(rules, ttl_seconds=ttl)

    def _with_ttls(self, ttls: Mapping[str, int]) -> Schema:
        # Only the seconds are configurable: whether an entity expires at all, and whether a
        # write refreshes it, are part of its declaration (references to it are refused).
        # `<entity>.lock`, `.oplog` and `.profile` name its document locks', operation logs'
        # and cached profiles'.
        known = {e.name: e for e in self.schema.entities if e.expiry is not None}
        known |= {f"{e.name}.lock": e for e in self.schema.entities if e.lock is not None}
        known |= {f"{e.name}.oplog": e for e in self.schema.entities if e.oplog is not None}
        known |= {f"{e.name}.profile": e for e in self.schema.entities if e.profile is not None}
        known |= {f"cache.{c}": self.users for c in self.cache_ttls}
        for name, seconds in ttls.items():
            if name not in known:
                raise ValueError(
                    f"{self.name} has no expiring entity {name!r}; its expiring entities are: "
                    f"{', '.join(sorted(known)) or 'none'} "
                    "(with <entity>.lock, .oplog, .profile, cache.<category>)"
                )
            if type(seconds) is not int or not 0 < seconds <= MAX_TTL_SECONDS:
                raise ValueError(
                    f"the TTL of {name} must be a whole number of seconds from 1 to "
                    f"{MAX_TTL_SECONDS} (10 years)"
                )
        entities = tuple(self._ttls_of(e, ttls) for e in self.schema.entities)
        return replace(self.schema, entities=entities)

    @staticmethod
    def _ttls_of(spec: EntitySpec, ttls: Mapping[str, int]) -> EntitySpec:
        if spec.expiry is not None and spec.name in ttls:
            spec = replace(spec, expiry=replace(spec.expiry, seconds=ttls[spec.name]))
        if spec.lock is not None and f"{spec.name}.lock" in ttls:
            spec = replace(spec, lock=replace(spec.lock, ttl_seconds=ttls[f"{spec.name}.lock"]))
        if spec.oplog is not None and f"{spec.name}.oplog" in ttls:
            seconds = ttls[f"{spec.name}.oplog"]
            spec = replace(spec, oplog=replace(spec.oplog, ttl_seconds=seconds))
        if spec.profile is not None and f"{spec.name}.profile" in ttls:
            seconds = ttls[f"{spec.name}.profile"]
            spec = replace(spec, profile=replace(spec.profile, ttl_seconds=seconds))
        return spec


MAX_TTL_SECONDS = 10 * 365 * 86400
"""The longest configurable TTL: Redis refuses an expiry whose time in milliseconds overflows,
so a larger one would pass start-up and then fail every write that sets it."""


def parse_ttls(raw: str) -> dict[str, int]:
    """``entity=seconds,...`` (``MULTIFRAME_TTL_SECONDS``) as a mapping; ValueError when
    malformed. Whether each entity expires is :meth:`System.served`'s to check."""
    out: dict[str, int] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, sep, seconds = (p.strip() for p in item.partition("="))
        if not sep or not name or not (seconds.isascii() and seconds.isdigit()):
            raise ValueError(f"{item!r} is not entity=seconds")
        if name in out:
            raise ValueError(f"{name} is given twice")
        out[name] = int(seconds)
    return out
