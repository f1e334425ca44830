"""OpenAPI of ``fields=`` and ``expand=`` (keyspace.sparse): the parameters of an entity's
reads by id and lists (its collection's and its relations'), generated from its model and
its references, and the schema of what they answer: the full model or its partial form."""

from __future__ import annotations

import copy
from typing import Any

from keyspace import EntitySpec, Schema, sparse

REF = "#/components/schemas/{model}"


def _paths(tree: Any, prefix: str = "") -> list[str]:
    out: list[str] = []
    for name, inner in tree.items():
        out.append(prefix + name)
        if inner is not None:
            out += _paths(inner, f"{prefix}{name}.")
    return out


def _embedded(schema: Schema, spec: EntitySpec) -> str:
    parts = []
    for ref in spec.references:
        target = schema.entity(ref.target)
        one = f"a {target.name} document or null"
        parts.append(f"{ref.field}: " + (f"an array of ({one}), in order" if ref.many else one))
    return "; ".join(parts)


def parameters(schema: Schema, spec: EntitySpec) -> list[dict[str, Any]]:
    """``fields`` (any path of the model, dotted into nested objects) and, for an entity with
    references, ``expand`` (its reference fields)."""
    params: list[dict[str, Any]] = [
        {
            "name": sparse.FIELDS,
            "in": "query",
            "required": False,
            "description": (
                "comma-separated paths to return, nested ones keeping their nesting "
                f'(chip_data.cores -> {{"chip_data": {{"cores": ...}}}}); {spec.id_field} '
                f"is always returned; at most {sparse.MAX_PATHS}; an unknown path is 400. A read's "
                "ETag stays the document's, so If-Match on a later write works"
            ),
            "schema": {
                "type": "array",
                "items": {"type": "string", "enum": _paths(sparse.model_tree(spec.model))},
            },
            "style": "form",
            "explode": False,
        }
    ]
    if spec.references:
        params.append(
            {
                "name": sparse.EXPAND,
                "in": "query",
                "required": False,
                "description": (
                    "comma-separated references whose documents are embedded beside the "
                    f"ids, under {sparse.EXPANDED} (fetched in one round trip after the page "
                    "or document; "
                    f"a missing one is null): {_embedded(schema, spec)}. An expanded field is "
                    "returned with fields too. A read that expands answers no 304"
                ),
                "schema": {
                    "type": "array",
                    "items": {"type": "string", "enum": [r.field for r in spec.references]},
                },
                "style": "form",
                "explode": False,
            }
        )
    return params


def partial_name(spec: EntitySpec) -> str:
    return f"{spec.model.__name__}Partial"


def expanded_name(spec: EntitySpec) -> str:
    return f"{spec.model.__name__}Expanded"


def answer(spec: EntitySpec) -> dict[str, Any]:
    """The schema of one document a read by id or a list item answers: the full model (a
    plain read), with ``fields`` its partial form, with ``expand`` its expanded form. anyOf,
    not oneOf: a full document fits the partial form too. Generated clients parse the first
    member that fits, so the expanded form (which requires ``_expanded``) comes before the
    model, whose parser would drop ``_expanded``, and the partial form after it."""
    names = [spec.model.__name__, partial_name(spec)]
    if spec.references:
        names.insert(0, expanded_name(spec))
    return {"anyOf": [{"$ref": REF.format(model=n)} for n in names]}


def _expanded(schema: Schema, spec: EntitySpec) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for ref in spec.references:
        target = {"$ref": REF.format(model=schema.entity(ref.target).model.__name__)}
        one = {"anyOf": [target, {"type": "null"}]}
        properties[ref.field] = {"type": "array", "items": one} if ref.many else one
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "description": f"the references expand named: {_embedded(schema, spec)}",
    }


def components(schema: Schema, out: dict[str, Any]) -> None:
    """For every entity, in ``out`` (where its ``{Model}Patch`` is): ``{Model}Partial``, the
    model's properties, nested objects' too, none required but the id field; and with
    references, ``{Model}Expanded``, those and ``_expanded``, required."""
    for spec in schema.entities:
        name = spec.model.__name__
        partial = copy.deepcopy(out[f"{name}Patch"])
        partial |= {
            "title": partial_name(spec),
            "required": [spec.id_field],
            "description": f"A {spec.name} read with fields: only the paths asked for, and the id",
        }
        out[partial_name(spec)] = partial
        if spec.references:
            expanded = copy.deepcopy(partial)
            expanded["properties"][sparse.EXPANDED] = _expanded(schema, spec)
            expanded |= {
                "title": expanded_name(spec),
                "required": [spec.id_field, sparse.EXPANDED],
                "description": f"A {spec.name} read with expand (and with fields, only the "
                "paths asked for): the referenced documents under _expanded",
            }
            out[expanded_name(spec)] = expanded
