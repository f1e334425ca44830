"""argparse types and defaults shared by ``multiframe-admin`` and its commands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from keyspace import check_url


def redis_url(text: str) -> str:
    """argparse type of ``--redis-url``: a URL redis-py can connect to."""
    try:
        check_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def positive_int(text: str) -> int:
    """argparse type of a count that must be at least 1."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return number


def non_negative(text: str) -> float:
    """argparse type of a mean that must be a finite number of at least 0."""
    try:
        number = float(text)
    except ValueError:
        number = -1.0
    if not 0 <= number < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, not {text!r}")
    return number


def positive_seconds(text: str) -> float:
    """argparse type of a wait: a finite number of seconds above 0 (NaN would never end it)."""
    try:
        number = float(text)
    except ValueError:
        number = 0.0
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, not {text!r}")
    return number


def default_data_dir() -> Path:
    """``--data-dir``'s default: MULTIFRAME_DATA_DIR, else var/redis."""
    return Path(os.environ.get("MULTIFRAME_DATA_DIR", "var/redis"))
