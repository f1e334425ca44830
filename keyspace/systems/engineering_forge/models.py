"""The JSONB schemas the Engineering Forge seed types ("JSONB Schema Definitions").

Each is validated as the seed writes it: the listed keys with their types and value lists,
nothing else (unknown keys are refused, nothing is coerced). The seed marks no key as
required, so every key may be left out (but not sent as null), and a document stores
exactly the keys it was sent: ``{}``, the column default of ``preferences``, stays ``{}``.
Keys the seed types by example ("string", "number") are strings and finite numbers (an
integer stays an integer); its "object" is free JSON.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
)

# The seed's "number": an integer stays an integer, a fraction a fraction (strict: no
# booleans, no numeric strings).
Number = Annotated[int | float, Field(allow_inf_nan=False)]
Str = Annotated[str, StringConstraints(max_length=1000)]
_LIST_MAX = 1000

# The default of a key that may be left out. Never stored: the serializer below keeps
# only the keys that were sent, and an explicit null is refused (the types exclude it).
OMITTED: Any = None


def _no_defaults(schema: dict[str, Any]) -> None:
    """OpenAPI shows no default for a key that is simply left out."""
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for prop in properties.values():
            if isinstance(prop, dict):
                prop.pop("default", None)


class _Partial(BaseModel):
    """Every key optional, and only the keys sent are stored (no nulls for absent keys)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_no_defaults)

    @model_serializer(mode="wrap")
    def _sent_keys_only(self, handler: SerializerFunctionWrapHandler) -> Any:
        dumped = handler(self)
        if not isinstance(dumped, dict):  # an absent nested key, dropped by its parent
            return dumped
        return {k: v for k, v in dumped.items() if k in self.model_fields_set}


# --- User Preferences ---------------------------------------------------------------


class Notifications(_Partial):
    email: bool = OMITTED
    push: bool = OMITTED
    achievements: bool = OMITTED
    community: bool = OMITTED


class Accessibility(_Partial):
    fontSize: Literal["small", "medium", "large"] = OMITTED
    highContrast: bool = OMITTED
    screenReader: bool = OMITTED


class Privacy(_Partial):
    profileVisibility: Literal["public", "private", "friends"] = OMITTED
    showProgress: bool = OMITTED
    showAchievements: bool = OMITTED


class Preferences(_Partial):
    """users.preferences: the seed's User Preferences schema."""

    theme: Literal["light", "dark", "auto"] = OMITTED
    notifications: Notifications = OMITTED
    accessibility: Accessibility = OMITTED
    privacy: Privacy = OMITTED


# --- Project Components -------------------------------------------------------------


class ComponentProperties(_Partial):
    power: Number = OMITTED
    weight: Number = OMITTED
    efficiency: Number = OMITTED
    durability: Number = OMITTED


class Position(_Partial):
    x: Number = OMITTED
    y: Number = OMITTED
    z: Number = OMITTED


class Component(_Partial):
    id: Str = OMITTED
    type: Literal["engine", "chassis", "suspension", "tires", "optional"] = OMITTED
    name: Str = OMITTED
    properties: ComponentProperties = OMITTED
    position: Position = OMITTED


class ComponentsSummary(_Partial):
    totalPower: Number = OMITTED
    totalWeight: Number = OMITTED
    efficiency: Number = OMITTED
    cost: Number = OMITTED


class ProjectComponents(_Partial):
    """projects.components: the seed's Project Components schema."""

    components: Annotated[list[Component], Field(max_length=_LIST_MAX)] = OMITTED
    metadata: ComponentsSummary = OMITTED


# --- Performance Metrics ------------------------------------------------------------


class PerformanceTestResults(_Partial):
    score: Number = OMITTED
    details: dict[str, Any] = OMITTED  # the seed's "object": free JSON


class PerformanceTestEntry(_Partial):
    testType: Literal["racetrack", "windTunnel", "offRoad", "dyno"] = OMITTED
    results: PerformanceTestResults = OMITTED
    timestamp: Str = OMITTED  # the seed's "string": kept as sent


class PerformanceMetrics(_Partial):
    """projects.performance_metrics: the seed's Performance Metrics schema."""

    acceleration: Number = OMITTED
    topSpeed: Number = OMITTED
    handling: Number = OMITTED
    efficiency: Number = OMITTED
    safety: Number = OMITTED
    overall: Number = OMITTED
    tests: Annotated[list[PerformanceTestEntry], Field(max_length=_LIST_MAX)] = OMITTED


# --- NFT Metadata -------------------------------------------------------------------


class NftAttribute(_Partial):
    trait_type: Str = OMITTED
    value: Str | Number = OMITTED
    display_type: Str = OMITTED


class NftFile(_Partial):
    uri: Str = OMITTED
    type: Str = OMITTED


class NftProperties(_Partial):
    files: Annotated[list[NftFile], Field(max_length=_LIST_MAX)] = OMITTED
    category: Str = OMITTED
    project_id: Str = OMITTED
    user_id: Str = OMITTED


class NftMetadata(_Partial):
    """projects.nft_metadata: the seed's NFT Metadata schema."""

    name: Str = OMITTED
    description: Annotated[str, StringConstraints(max_length=10_000)] = OMITTED
    image: Str = OMITTED
    attributes: Annotated[list[NftAttribute], Field(max_length=_LIST_MAX)] = OMITTED
    properties: NftProperties = OMITTED
