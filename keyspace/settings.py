"""The operating settings of a system that declares none of its own: maintenance and mode.

MultiFrame keeps them in its seed's ``config:system`` document. Every other system gets this
singleton under its reserved prefix (``<namespace>mf:settings``): ``system.maintenance``
refuses members' writes (``authorize.lua`` reads it), and ``reset`` is refused while
``system.mode`` is ``production``, the default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from .keys import SETTINGS_KEY
from .schema import SingletonSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OperatingMode(_Strict):
    mode: Literal["production", "development"]
    maintenance: bool


class OperatingSettings(_Strict):
    system: OperatingMode


SETTINGS = SingletonSpec(
    name="settings",
    key=SETTINGS_KEY,
    model=OperatingSettings,
    default={"system": {"mode": "production", "maintenance": False}},
    maintenance=True,
)
