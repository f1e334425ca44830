"""``encrypt`` and ``rotate-key``: sealing the sensitive fields of a live keyspace
(keyspace.rekeying, docs/encryption.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keyspace import Keyspace, crypto
from keyspace.rekeying import RekeyFailed, Summary, encrypt, forget_retired, rotate
from keyspace.schema import EntitySpec

from .exits import OK, PROBLEMS, USAGE
from .progress import Progress


def encrypt_args(parser: argparse.ArgumentParser) -> None:
    """No options: the key is the service's (MULTIFRAME_ENCRYPTION_KEY or _FILE)."""


def rotate_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--new-key", metavar="KEY", help="the new key: 64 hex digits or base64 of 32 bytes"
    )
    group.add_argument("--new-key-file", type=Path, metavar="FILE", help="a file holding it")
    group.add_argument(
        "--forget-retired",
        action="store_true",
        help="once every service runs with the new key: drop the keyring's route from the "
        "retired key to it (a service still holding only the old key then answers 503)",
    )


class _Shown:
    """One progress line per collection, and the summary."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bars: dict[str, Progress] = {}

    def __call__(self, spec: EntitySpec, read: int, rewritten: int) -> None:
        if spec.collection not in self.bars:
            self.bars[spec.collection] = Progress(f"{self.label} {spec.collection}")
        self.bars[spec.collection].advance(read)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.__exit__(None, None, None)


def _report(label: str, summary: Summary) -> int:
    for collection, examined in summary.examined.items():
        rewritten = summary.rewritten.get(collection, 0)
        print(f"{label}: {collection}: {examined} read, {rewritten} sealed")
    for key in dict.fromkeys(summary.unreadable):  # once, however many passes met it
        print(f"{label}: {key}: a sealed value does not open (another key, or changed)")
    if summary.unreadable:
        print(f"{label}: stopped before marking the keyspace done; fix those and run again")
        return PROBLEMS
    total = sum(summary.rewritten.values())
    print(f"{label}: done, {total} document(s) sealed; every sensitive value is sealed")
    return OK


async def run_encrypt(args: argparse.Namespace, ks: Keyspace) -> int:
    """Seal the plaintext left in a keyspace the service already encrypts (0 done, 1 a value
    that does not open, 3 no key configured, 75 another run holds the lock)."""
    if ks.sealer is None:
        print("encrypt: set MULTIFRAME_ENCRYPTION_KEY (or _FILE) to the service's key")
        return USAGE
    shown = _Shown("encrypt")
    try:
        summary = await encrypt(ks, batches=shown)
    except RekeyFailed as exc:
        print(f"encrypt: stopped: {exc}", file=sys.stderr)
        return PROBLEMS
    finally:
        shown.close()
    return _report("encrypt", summary)


async def run_rotate(args: argparse.Namespace, ks: Keyspace) -> int:
    """Re-seal everything under ``--new-key``, then retire the old key (0 done; then set the
    service's MULTIFRAME_ENCRYPTION_KEY to the new key at its next restart)."""
    if ks.sealer is None:
        print("rotate-key: set MULTIFRAME_ENCRYPTION_KEY (or _FILE) to the current key")
        return USAGE
    if args.forget_retired:
        return await _forget(ks)
    try:
        text = args.new_key if args.new_key else args.new_key_file.read_text()
        new_key = crypto.parse_key(text)
    except (OSError, crypto.BadKey) as exc:
        print(f"rotate-key: --new-key: {exc}", file=sys.stderr)
        return USAGE
    shown = _Shown("rotate-key")
    try:
        summary = await rotate(ks, new_key, batches=shown)
    except RekeyFailed as exc:
        print(f"rotate-key: stopped: {exc}", file=sys.stderr)
        return PROBLEMS
    finally:
        shown.close()
    code = _report("rotate-key", summary)
    if code == OK:
        print(
            f"rotate-key: key id {crypto.key_id(new_key)} is the keyspace's key; set "
            "MULTIFRAME_ENCRYPTION_KEY to it and restart the services (running ones already "
            "use it); then run `multiframe-admin rotate-key --forget-retired` so the old key "
            "opens nothing"
        )
    return code


async def _forget(ks: Keyspace) -> int:
    try:
        forgotten = await forget_retired(ks)
    except RekeyFailed as exc:
        print(f"rotate-key: stopped: {exc}", file=sys.stderr)
        return PROBLEMS
    if not forgotten:
        print("rotate-key: no retired key is still linked to the current one")
    for kid in forgotten:
        print(f"rotate-key: key id {kid} opens nothing any more")
    return OK
