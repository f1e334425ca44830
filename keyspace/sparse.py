"""Sparse fields and embedded references (``fields=`` and ``expand=``): pure, no I/O.

``fields=driver_id,status,chip_data.cores`` names dotted paths of the entity's model (its
pydantic declaration, nested models included); a response keeps only those paths, nested ones
keeping their nesting. The id field is always kept, so every item of a list still says which
document it is (and a cursor or a later write can name it). A path under another one asked
for adds nothing (``chip_data`` already holds ``chip_data.cores``).

``expand=user_id,collaborators`` names declared references (keyspace.schema.Reference, arrays
of ids included). An expanded field is kept in a sparse answer too, and the referenced
documents are embedded beside the document's own fields, under ``_expanded``: the document
stays seed-shaped (``user_id`` is still the id), and ``_expanded[field]`` is the target
document, or for an array the list of targets in the array's order; a target that does not
exist (or a value that is no id) is ``null``. No declared field starts with ``_``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import orjson
from pydantic import BaseModel

from .errors import ValidationFailed
from .schema import EntitySpec, Reference, get_path, ref_ids

EXPANDED = "_expanded"
FIELDS, EXPAND = "fields", "expand"
PARAMS = (FIELDS, EXPAND)  # the read parameters that shape an answer, not select documents
MAX_PATHS = 100

Tree = Mapping[str, "Tree | None"]
"""A model's paths: each field name to its nested model's tree, or None for a leaf."""


def _nested(annotation: Any) -> type[BaseModel] | None:
    """The model a field's value is (directly, or as the one model of an optional)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType):
        models = [m for m in (_nested(a) for a in typing.get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


def model_tree(model: type[BaseModel]) -> dict[str, Tree | None]:
    """Every path a sparse answer may name: the model's fields, into nested models (not into
    arrays or maps, whose members have no name of their own)."""
    out: dict[str, Tree | None] = {}
    for name, info in model.model_fields.items():
        inner = _nested(info.annotation)
        out[info.alias or name] = None if inner is None else model_tree(inner)
    return out


def _invalid(param: str, message: str, names: Sequence[str] = ()) -> ValidationFailed:
    """The refusal of ``param``; ``details`` holds one entry per name refused (each naming
    the parameter, as a list filter's refusal does), or one for the whole parameter."""
    if not names:
        return ValidationFailed(
            f"{param}: {message}", details=[{"field": param, "message": message}]
        )
    what = "path" if param == FIELDS else "reference"
    details = [{"field": param, "message": f"{n}: unknown {what}", "value": n} for n in names]
    return ValidationFailed(f"{param}: {message}", details=details)


def _names(values: Sequence[str]) -> list[str]:
    """The comma-separated names of a repeatable parameter, in order, each once."""
    names = [n.strip() for v in values for n in v.split(",")]
    return list(dict.fromkeys(n for n in names if n))


def _known(tree: Tree, path: str) -> bool:
    node: Tree | None = tree
    for part in path.split("."):
        if node is None or part not in node:
            return False
        node = node[part]
    return True


def minimal(paths: Iterable[str]) -> tuple[str, ...]:
    """``paths`` without those under another one (``a.b`` when ``a`` is there), in order."""
    given = list(dict.fromkeys(paths))
    return tuple(p for p in given if not any(p != q and p.startswith(q + ".") for q in given))


def parse_fields(spec: EntitySpec, values: Sequence[str] | None) -> tuple[str, ...] | None:
    """The paths a ``fields`` parameter keeps (the id field first, then the owner where the
    entity has private fields), None when absent;
    ValidationFailed naming every path the model does not declare."""
    if values is None:
        return None
    names = _names(values)
    if not names:
        raise _invalid(FIELDS, "name at least one field, e.g. fields=" + spec.id_field)
    if len(names) > MAX_PATHS:
        raise _invalid(FIELDS, f"at most {MAX_PATHS} paths")
    tree = model_tree(spec.model)
    unknown = [n for n in names if not _known(tree, n)]
    if unknown:
        raise _invalid(FIELDS, f"{', '.join(unknown)}: not a field of {spec.collection}", unknown)
    # The owner too where fields are private: whether a caller may read them is theirs.
    owner = [spec.owner] if spec.private_fields and spec.owner is not None else []
    return minimal([spec.id_field, *owner, *names])


def parse_expand(spec: EntitySpec, values: Sequence[str] | None) -> tuple[Reference, ...]:
    """The references an ``expand`` parameter embeds (none when absent); ValidationFailed
    naming every name that is not a declared reference of the entity."""
    if values is None:
        return ()
    names = _names(values)
    declared = {r.field: r for r in spec.references}
    if not names:
        choices = ", ".join(declared) or "none"
        raise _invalid(EXPAND, f"name at least one reference ({choices})")
    unknown = [n for n in names if n not in declared]
    if unknown:
        choices = ", ".join(declared) or "it declares none"
        raise _invalid(
            EXPAND,
            f"{', '.join(unknown)}: not a reference of {spec.collection} ({choices})",
            unknown,
        )
    return tuple(declared[n] for n in names)


def json_path(path: str) -> str:
    """A dotted path as a JSONPath in bracket notation (any declared name, alias included)."""
    return "$" + "".join(f"[{orjson.dumps(part).decode()}]" for part in path.split("."))


def put(out: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        inner = out.get(part)
        if not isinstance(inner, dict):
            inner = out[part] = {}
        out = inner
    out[parts[-1]] = value


def project(doc: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """``doc`` with only ``paths`` (dotted, nesting kept); a path the document lacks is left
    out, as a full read would not show it either."""
    out: dict[str, Any] = {}
    for path in paths:
        parts = path.split(".")
        node: Any = doc
        for part in parts:
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            put(out, parts, node)
    return out


def read_paths(paths: Sequence[str], also: Iterable[str]) -> tuple[str, ...]:
    """What to read of each document to answer ``paths`` and evaluate ``also`` (a query's
    fields, the references to expand): their union, minimal."""
    return minimal([*paths, *also])


@dataclass(frozen=True)
class Shape:
    """How one read or list answer is shaped: ``paths`` kept (None: whole documents),
    ``expand`` the references embedded."""

    paths: tuple[str, ...] | None = None
    expand: tuple[Reference, ...] = ()

    @property
    def plain(self) -> bool:
        return self.paths is None and not self.expand

    @property
    def kept(self) -> tuple[str, ...] | None:
        """The paths an answer keeps: ``paths`` and the expanded fields."""
        if self.paths is None:
            return None
        return minimal([*self.paths, *(r.field for r in self.expand)])

    def wanted(self, docs: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
        """The ids to fetch for the expansion, by target entity name, each once."""
        out: dict[str, dict[str, None]] = {}
        for doc in docs:
            for ref in self.expand:
                ids = out.setdefault(ref.target, {})
                for doc_id in ref_ids(doc, ref):
                    ids[doc_id] = None
        return {target: list(ids) for target, ids in out.items()}

    def apply(
        self,
        doc: Mapping[str, Any],
        found: Mapping[str, Mapping[str, dict[str, Any] | None]] | None = None,
    ) -> dict[str, Any]:
        """``doc`` shaped: projected to :attr:`kept`, and with ``_expanded`` from ``found``
        (target entity name -> id -> document or None)."""
        kept = self.kept
        out = dict(doc) if kept is None else project(doc, kept)
        if self.expand:
            out[EXPANDED] = {r.field: embedded(doc, r, found or {}) for r in self.expand}
        return out


def embedded(
    doc: Mapping[str, Any],
    ref: Reference,
    found: Mapping[str, Mapping[str, dict[str, Any] | None]],
) -> Any:
    """The target(s) of ``doc``'s reference ``ref``: a document or None, a list of them (in
    the array's order) for an array of ids; None for an absent or null reference."""
    targets = found.get(ref.target, {})
    value = get_path(doc, ref.field)
    if ref.many and isinstance(value, list):
        return [targets.get(v) if isinstance(v, str) else None for v in value]
    return targets.get(value) if isinstance(value, str) else None
