"""OpenAPI of a system's declared read routes (keyspace.views, app/views.py): their answer
schemas and the query parameters of a view whose list takes the client's."""

from __future__ import annotations

from typing import Any

from keyspace import System, View

from .openapi_lists import list_parameters

REF = "#/components/schemas/{model}"
X_CACHE = {
    "description": "HIT: the answer came from the cache; MISS: computed (and stored)",
    "schema": {"type": "string", "enum": ["HIT", "MISS"]},
}


def components(served: System, out: dict[str, Any]) -> None:
    """Add every view's answer model (and the models it nests) to ``out``. A nested model
    may be an entity's own (a price feed in a price's history); any other name already taken
    is a declaration error: two schemas under one name would answer for each other."""
    for view in served.views:
        if view.answer is None:
            continue
        schema = view.answer.model_json_schema(ref_template=REF)
        for name, sub in (*schema.pop("$defs", {}).items(), (view.answer.__name__, schema)):
            if name in out and out[name] != sub:
                raise ValueError(f"{served.name}: view schema {name} clashes with another")
            out[name] = sub


def parameters(served: System, view: View) -> list[dict[str, Any]]:
    """The client's query parameters: the open list's, minus what the view fixes, under the
    names the view gives them."""
    part = view.open
    if part is None:
        return []
    renames = {target: name for name, target in part.renames}
    fixed = {name for name, _ in (*part.filters, *part.bind)}
    out = []
    for param in list_parameters(served.schema.collection(part.collection)):
        if param["name"] in fixed:
            continue
        param = {**param, "name": renames.get(param["name"], param["name"])}
        if part.when_asked:
            param["description"] = f"{param.get('description', '')} (asks for the list)".strip()
        out.append(param)
    return out
