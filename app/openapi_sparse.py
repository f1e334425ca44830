"""OpenAPI of ``fields=`` and ``expand=`` (keyspace.sparse): the parameters of an entity's
reads by id and lists (its collection's and its relations'), generated from its model and
its references."""

from __future__ import annotations

from typing import Any

from keyspace import EntitySpec, Schema, sparse


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
