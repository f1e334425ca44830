"""MultiFrame's pydantic models (seed 000): field names, types and enums exactly as stored.

Models forbid unknown fields and coerce nothing: a document either is
seed-shaped or is rejected with the field that is wrong.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from ...fieldtypes import Email, Id, Timestamp, distinct, text_rules


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


Name = Annotated[str, StringConstraints(min_length=1, max_length=64), text_rules()]
Label = Annotated[str, StringConstraints(min_length=1, max_length=64), text_rules()]
Members = Annotated[list[Id], Field(max_length=1000), AfterValidator(distinct)]
Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]

Role = Literal["admin", "designer", "engineer"]
ChipType = Literal["quantum_processor", "neural_processor", "crypto_processor"]


class ChipData(_Doc):
    type: ChipType
    cores: Annotated[int, Field(ge=1, le=1_000_000)]
    frequency: Label
    architecture: Label


class User(_Doc):
    user_id: Id
    username: Name
    email: Email
    role: Role
    created_at: Timestamp


class Driver(_Doc):
    driver_id: Id
    user_id: Id
    chip_id: Id
    chip_data: ChipData
    status: Literal["generated", "optimized"]
    version: Label
    timestamp: Timestamp


class Collab(_Doc):
    collab_id: Id
    user_id: Id
    chip_id: Id
    chip_data: ChipData
    collaborators: Members
    status: Literal["active", "completed"]
    timestamp: Timestamp


class Process(_Doc):
    process_id: Id
    user_id: Id
    chip_data: ChipData
    status: Literal["running", "completed"]
    timestamp: Timestamp


class Nft(_Doc):
    nft_id: Annotated[str, StringConstraints(max_length=300, pattern=r"^nft_[A-Za-z0-9_.\-]+$")]
    user_id: Id
    chip_id: Id
    metadata_uri: Annotated[
        str, StringConstraints(min_length=1, max_length=512, pattern=r"^\S+$"), text_rules()
    ]
    owner: Address


class Quest(_Doc):
    quest_id: Id
    user_id: Id
    title: Annotated[str, StringConstraints(min_length=1, max_length=200), text_rules()]
    # Line breaks and tabs are text; other control characters are not.
    description: Annotated[
        str, StringConstraints(max_length=5000), text_rules(line_breaks=True, edges=False)
    ]
    status: Literal["active", "completed"]
    reward: Annotated[str, StringConstraints(max_length=200), text_rules()]
    timestamp: Timestamp


class SystemSettings(_Doc):
    version: Label
    mode: Literal["production", "development"]
    maintenance: bool


class SystemConfig(_Doc):
    system: SystemSettings
    subscription_price: Annotated[int, Field(ge=0, le=1_000_000_000)]
    supported_fabs: Annotated[list[Label], Field(max_length=100)]
    supported_protocols: Annotated[list[Label], Field(max_length=100)]


class ChipMetrics(_Doc):
    performance: Percent
    efficiency: Percent
    temperature: Annotated[float, Field(ge=-273.15, le=1000, allow_inf_nan=False)]
    last_updated: Timestamp


class ChipMetricsInput(_Doc):
    """What a client sends for one chip; ``last_updated`` is always set by the service."""

    performance: Percent
    efficiency: Percent
    temperature: Annotated[float, Field(ge=-273.15, le=1000, allow_inf_nan=False)]


class AnalyticsMetrics(_Doc):
    chip_metrics: Annotated[dict[Id, ChipMetrics], Field(max_length=100_000)]
