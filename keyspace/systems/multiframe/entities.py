"""The MultiFrame 11.0 keyspace, declared: six entity types and two singletons."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...codec import now_iso
from ...schema import (
    EntitySpec,
    FieldKind,
    Indexed,
    OnDelete,
    Reference,
    Satellites,
    Schema,
    Sensitive,
    SingletonSpec,
    Transitions,
    Unique,
)
from . import models

_OWNER = Reference("user_id", "user", OnDelete.CASCADE)


def _id(name: str) -> Indexed:
    return Indexed(name, name, FieldKind.TAG, sortable=True)


def _tag(name: str, path: str | None = None) -> Indexed:
    return Indexed(name, path or name, FieldKind.TAG)


def _time(name: str) -> Indexed:
    return Indexed(name, name, FieldKind.TIME, sortable=True)


def _chip_data(*, ranked: bool = False) -> tuple[Indexed, ...]:
    """The chip's indexed fields; ``ranked``: cores kept in a sorted set (keyspace.ranks),
    for the broad lists of drivers by cores."""
    return (
        _tag("chip_type", "chip_data.type"),
        Indexed("cores", "chip_data.cores", FieldKind.NUMERIC, sortable=True, ranked=ranked),
        _tag("frequency", "chip_data.frequency"),
        _tag("architecture", "chip_data.architecture"),
    )


def _active_to_completed(field: str = "status") -> Transitions:
    return Transitions(field, {"active": frozenset({"completed"})})


def _nft_id(doc: Mapping[str, Any]) -> str:
    return f"nft_{doc.get('user_id')}_{doc.get('chip_id')}"


def _metadata_uri(doc: Mapping[str, Any], doc_id: str) -> str:
    return f"ipfs://metadata/{doc_id}"


def _now(doc: Mapping[str, Any], doc_id: str) -> str:
    return now_iso()


USER = EntitySpec(
    owner="user_id",
    name="user",
    prefix="user",
    collection="users",
    id_field="user_id",
    model=models.User,
    fields=(
        _id("user_id"),
        _tag("username"),
        Indexed("username_text", "username", FieldKind.TEXT),
        Indexed("email", "email", FieldKind.TAG, case_sensitive=False),
        _tag("role"),
        _time("created_at"),
    ),
    uniques=(Unique("email"), Unique("username")),
    sensitive=(Sensitive("email", case_insensitive=True),),
    defaults={"created_at": _now},
    satellites=Satellites(watch=("role",), derive=lambda doc: {"role": str(doc.get("role", ""))}),
)

DRIVER = EntitySpec(
    owner="user_id",
    name="driver",
    prefix="driver",
    collection="drivers",
    id_field="driver_id",
    model=models.Driver,
    fields=(
        _id("driver_id"),
        _tag("user_id"),
        _tag("chip_id"),
        *_chip_data(ranked=True),
        _tag("status"),
        _tag("version"),
        _time("timestamp"),
    ),
    references=(_OWNER,),
    transitions=Transitions("status", {"generated": frozenset({"optimized"})}),
    defaults={"timestamp": _now, "status": lambda doc, _id: "generated"},
    touch_on_update=("timestamp",),
)

COLLAB = EntitySpec(
    owner="user_id",
    name="collab",
    prefix="collab",
    collection="collabs",
    id_field="collab_id",
    model=models.Collab,
    fields=(
        _id("collab_id"),
        _tag("user_id"),
        _tag("chip_id"),
        *_chip_data(),
        Indexed("collaborators", "collaborators", FieldKind.TAG, array=True),
        _tag("status"),
        _time("timestamp"),
    ),
    references=(
        _OWNER,
        Reference("collaborators", "user", OnDelete.PULL, many=True, relation="collaborations"),
    ),
    transitions=_active_to_completed(),
    defaults={
        "timestamp": _now,
        "status": lambda doc, _id: "active",
        "collaborators": lambda doc, _id: [],
    },
)

PROCESS = EntitySpec(
    owner="user_id",
    name="process",
    prefix="process",
    collection="processes",
    id_field="process_id",
    model=models.Process,
    fields=(_id("process_id"), _tag("user_id"), *_chip_data(), _tag("status"), _time("timestamp")),
    references=(_OWNER,),
    transitions=Transitions("status", {"running": frozenset({"completed"})}),
    defaults={"timestamp": _now, "status": lambda doc, _id: "running"},
)

NFT = EntitySpec(
    owner="user_id",
    name="nft",
    prefix="nft",
    collection="nfts",
    id_field="nft_id",
    model=models.Nft,
    fields=(
        _id("nft_id"),
        _tag("user_id"),
        _tag("chip_id"),
        _tag("metadata_uri"),
        Indexed("owner", "owner", FieldKind.TAG, case_sensitive=False),
    ),
    references=(_OWNER,),
    sensitive=(Sensitive("owner", case_insensitive=True),),
    defaults={"metadata_uri": _metadata_uri},
    derive_id=_nft_id,
    derived_from=("user_id", "chip_id"),  # one NFT per (user, chip), whatever the ids look like
)

QUEST = EntitySpec(
    owner="user_id",
    name="quest",
    prefix="quest",
    collection="quests",
    id_field="quest_id",
    model=models.Quest,
    fields=(
        _id("quest_id"),
        _tag("user_id"),
        Indexed("title", "title", FieldKind.TEXT),
        Indexed("description", "description", FieldKind.TEXT),
        _tag("status"),
        _tag("reward"),
        _time("timestamp"),
    ),
    references=(_OWNER,),
    transitions=_active_to_completed(),
    defaults={
        "timestamp": _now,
        "status": lambda doc, _id: "active",
        "description": lambda d, i: "",
    },
)

SYSTEM_CONFIG = SingletonSpec(
    name="config",
    key="config:system",
    model=models.SystemConfig,
    maintenance=True,
    default={
        "system": {"version": "11.0.0", "mode": "production", "maintenance": False},
        "subscription_price": 10,
        "supported_fabs": ["TSMC", "Intel", "Samsung"],
        "supported_protocols": ["MQTT", "OPC_UA"],
    },
)

ANALYTICS = SingletonSpec(
    name="analytics",
    key="analytics:metrics",
    model=models.AnalyticsMetrics,
    entry_models=(models.ChipMetricsInput, models.ChipMetrics),
    default={
        "chip_metrics": {
            "chip_quantum_1": {
                "performance": 95.5,
                "efficiency": 87.2,
                "temperature": 45.3,
                "last_updated": "2025-09-29T10:30:00",
            }
        }
    },
)

MULTIFRAME = Schema(
    entities=(USER, DRIVER, COLLAB, PROCESS, NFT, QUEST),
    singletons=(SYSTEM_CONFIG, ANALYTICS),
)
"""The schema the service serves."""
