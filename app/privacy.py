"""Private fields withheld (``EntitySpec.private_fields``, keyspace.privacy): a caller who is
neither an admin nor the document's owner never reads them. Every answer carrying documents
of such an entity passes here: reads by id, list pages (never cached), the documents
``expand=`` embeds, write answers and replayed ones, with their ETags (README, "Private
fields"); the change feed gives members no revision of such a collection (app.changes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from keyspace import EntitySpec, Stored, codec, sparse

from .auth import caller
from .policy import Caller
from .state import keyspace
from .wire import JSON, etag, stored_response


def owns(who: Caller, spec: EntitySpec, doc: Mapping[str, Any]) -> bool:
    return spec.owner is not None and doc.get(spec.owner) == who.user_id


def withheld(who: Caller, spec: EntitySpec, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as ``who`` reads it: without the private fields unless admin or owner."""
    if not spec.private_fields or who.admin or owns(who, spec, doc):
        return doc
    return {k: v for k, v in doc.items() if k not in spec.private_fields}


@dataclass(frozen=True)
class Withholding:
    """What one caller may not read of an answer's documents (``spec``'s) and of the
    documents expanded into them (``targets``: reference field -> target entity)."""

    who: Caller
    spec: EntitySpec
    targets: Mapping[str, EntitySpec]

    def item(self, doc: dict[str, Any]) -> dict[str, Any]:
        out = withheld(self.who, self.spec, doc)
        expanded = out.get(sparse.EXPANDED)
        if isinstance(expanded, dict) and self.targets:
            out = {**out, sparse.EXPANDED: {f: self._embedded(f, v) for f, v in expanded.items()}}
        return out

    def _embedded(self, field: str, value: Any) -> Any:
        target = self.targets.get(field)
        if target is None:
            return value
        if isinstance(value, list):
            return [withheld(self.who, target, d) if isinstance(d, dict) else d for d in value]
        return withheld(self.who, target, value) if isinstance(value, dict) else value

    def etag(self, stored: Stored) -> str:
        """The ETag this caller gets for ``stored``: its revision, or, when fields are
        withheld from the caller, a weak tag of the document as shown. The revision hashes
        the whole stored document, so a member could test guesses of what it is not shown
        against it (even a null against a sealed value), and a strong tag shared with the
        owner's answer would let a cache answer one with the other (review 40). A weak tag
        never passes If-Match: a write by someone shown less than the whole is refused 412."""
        shown = withheld(self.who, self.spec, stored.doc)
        if shown is stored.doc:
            return etag(stored.revision)
        return f'W/"{codec.revision(codec.dumps(shown))}"'

    def page(self, body: dict[str, Any]) -> dict[str, Any]:
        """A list answer's body (``{"items", ...}``) with its items withheld."""
        return {**body, "items": [self.item(d) for d in body["items"]]}


def withholding(
    request: web.Request, spec: EntitySpec, shaped: sparse.Shape | None = None
) -> Withholding | None:
    """The request's withholding for an answer of ``spec`` (expanding ``shaped.expand``);
    None when it withholds nothing: an admin's, or no entity involved has private fields."""
    refs = shaped.expand if shaped is not None else ()
    if not spec.private_fields and not refs:
        return None  # the common case, decided without a lookup
    who = caller(request)
    if who.admin:
        return None
    schema = keyspace(request).schema
    targets = {r.field: schema.entity(r.target) for r in refs}
    targets = {f: t for f, t in targets.items() if t.private_fields}
    if not spec.private_fields and not targets:
        return None
    return Withholding(who, spec, targets)


def shown_body(request: web.Request, spec: EntitySpec, stored: Stored) -> bytes:
    """``stored`` as the request's caller is shown it (a batch's items)."""
    withholds = withholding(request, spec)
    shown = stored.doc if withholds is None else withholds.item(stored.doc)
    return stored.body if shown is stored.doc else codec.dumps(shown)


def stored_answer(
    request: web.Request,
    spec: EntitySpec,
    stored: Stored,
    *,
    status: int = 200,
    location: str | None = None,
) -> web.Response:
    """``stored`` answered to the request's caller: ``wire.stored_response`` when nothing is
    withheld, else what the caller is shown, with :meth:`Withholding.etag`."""
    withholds = withholding(request, spec)
    shown = stored.doc if withholds is None else withholds.item(stored.doc)
    if withholds is None or shown is stored.doc:
        return stored_response(stored, status=status, location=location)
    headers = {"ETag": withholds.etag(stored)}
    if location:
        headers["Location"] = location
    return web.Response(body=codec.dumps(shown), status=status, content_type=JSON, headers=headers)
