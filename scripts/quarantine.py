"""``quarantine list|show|restore|drop``: the legacy records ``import-legacy`` could not convert.

Each entry keeps a record exactly as it was (keyspace.quarantine). A person fixes one outside
the keyspace and brings it back: ``show KEY --value > record.json``, edit the file, then
``restore KEY --from-file record.json``. ``restore`` validates as the import does (the id must
match the key; uniques, references) and creates the document under its original key through
the same commit path as every create, deleting the entry in that commit; a record still
invalid is refused with the reason and the entry stays as it was. ``restore --all`` retries
every entry as stored (after the user a record referred to was imported, say). ``drop``
deletes entries for good. Exit codes: 0 done, 1 an entry missing or still invalid, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from keyspace import Keyspace, codec, quarantine
from keyspace.crypto import Cipher
from keyspace.plan import Plan
from keyspace.quarantine import Entry
from keyspace.schema import EntitySpec, SingletonSpec

from .exits import OK, PROBLEMS
from .legacy import Importer
from .legacy_conversion import convert, convert_single
from .progress import Progress

REKEYED_TRIES = 3
NOT_DONE = "nothing was done; look again (quarantine list / show)"
HOW = (
    "fix it: multiframe-admin quarantine show {key} --value > record.json; edit record.json; "
    "multiframe-admin quarantine restore {key} --from-file record.json"
)


def add_args(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every quarantined record: key, entity, when, why")
    listing.add_argument("--json", action="store_true", help="as JSON")
    show = actions.add_parser("show", help="one record, with its value as it was")
    show.add_argument("key", help="the record's original key, e.g. user:user_4")
    show.add_argument("--value", action="store_true", help="only the value's exact bytes")
    restore = actions.add_parser(
        "restore", help="validate and import a record under its key (refused while invalid)"
    )
    restore.add_argument("key", nargs="?", help="the record's original key")
    restore.add_argument(
        "--from-file", type=Path, metavar="FILE", help="import FILE's record instead ('-': stdin)"
    )
    restore.add_argument("--all", action="store_true", help="retry every entry as stored")
    drop = actions.add_parser("drop", help="delete records from the quarantine for good")
    drop.add_argument("keys", nargs="+", metavar="KEY")
    parser.set_defaults(usage=_usage)


def _usage(args: argparse.Namespace) -> str | None:
    if args.action != "restore":
        return None
    if args.all == bool(args.key):
        return "quarantine restore: give one KEY, or --all"
    if args.all and args.from_file:
        return "quarantine restore: --from-file goes with one KEY"
    return None


async def run(args: argparse.Namespace, ks: Keyspace) -> int:
    if args.action == "list":
        return await _list(ks, as_json=args.json)
    if args.action == "show":
        return await _show(ks, args.key, value_only=args.value)
    if args.action == "drop":
        return await _drop(ks, args.keys)
    if args.all:
        return await _restore_all(ks)
    raw = None
    if args.from_file is not None:
        source = sys.stdin.buffer if str(args.from_file) == "-" else None
        raw = source.read() if source is not None else args.from_file.read_bytes()
    return await _restore_one(ks, args.key, raw)


async def _list(ks: Keyspace, *, as_json: bool) -> int:
    found = await quarantine.entries(ks.client, ks.schema.names, _cipher(ks))
    if as_json:
        shown = [
            {
                "key": e.key,
                "entity": e.entity,
                "at": e.at,
                "reason": e.reason,
                "bytes": len(e.value),
            }
            for e in found
        ]
        print(json.dumps(shown, indent=2))
        return OK
    for entry in found:
        print(f"{entry.key}  {entry.entity}  {entry.at}  {entry.reason}")
    print(f"quarantine: {len(found)} record(s)")
    return OK


async def _show(ks: Keyspace, key: str, *, value_only: bool) -> int:
    entry = await quarantine.read(ks.client, ks.schema.names, key, _cipher(ks))
    if entry is None:
        print(f"error: no quarantined record {key}", file=sys.stderr)
        return PROBLEMS
    if entry.unreadable:
        print(f"error: {key}: {entry.unreadable}", file=sys.stderr)
        return PROBLEMS
    if value_only:
        sys.stdout.buffer.write(entry.value)
        sys.stdout.buffer.flush()
        return OK
    print(f"key: {entry.key}\nentity: {entry.entity}\nat: {entry.at}\nreason: {entry.reason}")
    print(f"value ({len(entry.value)} bytes):\n{entry.text}")
    return OK


async def _drop(ks: Keyspace, keys: list[str]) -> int:
    code = OK
    for key in keys:
        entry = await quarantine.read(ks.client, ks.schema.names, key, _cipher(ks))
        if entry is None:
            print(f"error: no quarantined record {key}", file=sys.stderr)
            code = PROBLEMS
            continue
        if not (await ks.commit(quarantine.plan_drop(ks.schema.names, entry))).ok:
            print(f"error: {key} changed meanwhile (restored?): {NOT_DONE}", file=sys.stderr)
            code = PROBLEMS
            continue
        print(f"dropped {key}")
    return code


async def _restore_one(ks: Keyspace, key: str, raw: bytes | None) -> int:
    entry = await quarantine.read(ks.client, ks.schema.names, key, _cipher(ks))
    if entry is None:
        print(f"error: no quarantined record {key}", file=sys.stderr)
        return PROBLEMS
    why = await restore(ks, entry, raw)
    if why:
        print(f"refused: {key} stays quarantined: {why}\n  {HOW.format(key=key)}")
        return PROBLEMS
    print(f"restored {key}")
    return OK


async def _restore_all(ks: Keyspace) -> int:
    found = await quarantine.entries(ks.client, ks.schema.names, _cipher(ks))
    refused: list[tuple[str, str]] = []
    with Progress("restore", total=len(found), stream=sys.stderr) as progress:
        for entry in found:
            if why := await restore(ks, entry):
                refused.append((entry.key, why))
            progress.advance()
    print(progress.summary("records"), file=sys.stderr)
    print(f"restored {len(found) - len(refused)} of {len(found)}; {len(refused)} still quarantined")
    for key, why in refused:
        print(f"  {key}: {why}")
    return PROBLEMS if refused else OK


async def restore(ks: Keyspace, entry: Entry, raw: bytes | None = None) -> str:
    """Import ``raw`` (default: the record as quarantined) as the record of ``entry.key``,
    deleting the entry in the same commit; "" when done, else why not (nothing changed)."""
    if raw is None:
        if entry.unreadable:
            return entry.unreadable
        raw = entry.value
    importer = Importer(ks, ks.client, in_place=True, dry_run=False, batch=1)
    single = next((s for s in ks.schema.singletons if s.key == entry.key), None)
    if single is not None:
        return await _restore_single(ks, importer, single, entry, raw)
    spec = _entity(ks, entry)
    if spec is None:
        return f"{entry.key} is no key of an entity of {ks.schema.names.namespace or 'MultiFrame'}"
    doc = convert(ks.schema.names, spec, entry.key, raw)
    if isinstance(doc, str):
        return doc
    for _ in range(REKEYED_TRIES):
        # The create path of imports: sealed and fenced when the keyspace is encrypted, so
        # the document and its unique claims hold blind tokens, never the plaintext.
        plan = ks.documents.plan_stored(spec, doc[spec.id_field], doc, explicit_id=True)
        quarantine.check_unchanged(ks.schema.names, plan, entry)
        plan.write("del", ks.schema.names.quarantine_key(entry.key))
        result = await ks.commit(plan)
        if result.error != "rekeyed" or quarantine.changed(result.field):
            break
        await ks.keys.refresh()  # a rotation made another key current: seal under it
    if result.ok:
        return ""
    if result.error == "rekeyed" and quarantine.changed(result.field):
        return f"the entry changed meanwhile (dropped, or sealed again): {NOT_DONE}"
    if result.error == "unique_conflict":
        return f"duplicate {result.field}: already used by {result.value}"
    if result.error == "missing_reference":
        target = next(r.target for r in spec.references if r.field == result.field)
        return f"{result.field}: {target} {result.value} does not exist"
    if result.error == "already_exists":
        return f"{entry.key} holds a document already: drop the entry, or delete that first"
    return f"refused: {result.error} {result.field} {result.value}".rstrip()


async def _restore_single(
    ks: Keyspace, importer: Importer, spec: SingletonSpec, entry: Entry, raw: bytes
) -> str:
    """A singleton replaces the document there (the default ``setup`` wrote, or an edited
    one: the person restoring it asked for this record), if unchanged since read."""
    doc = convert_single(spec, raw)
    if isinstance(doc, str):
        return doc
    kind, current = await importer.target(spec.key)
    if current is None and kind != b"none":
        return f"{spec.key} holds a {kind.decode()} value"
    plan = Plan(ks.schema.names.pause_key())
    if current is None:
        plan.check("absent", spec.key)
    else:
        plan.check("equals", spec.key, current)
    plan.write("jset", spec.key, codec.dumps(doc))
    quarantine.check_unchanged(ks.schema.names, plan, entry)
    plan.write("del", ks.schema.names.quarantine_key(entry.key))
    return "" if (await ks.commit(plan)).ok else f"changed meanwhile: {NOT_DONE}"


def _cipher(ks: Keyspace) -> Cipher | None:
    """What opens sealed entries (an encrypted keyspace's; docs/encryption.md)."""
    return None if ks.keys.sealer is None else ks.keys.sealer.cipher


def _entity(ks: Keyspace, entry: Entry) -> EntitySpec | None:
    """The entity of an entry: the one it names, else the longest prefix its key has."""
    names = ks.schema.names
    for spec in ks.schema.entities:
        if spec.name == entry.entity and entry.key.startswith(names.doc_key(spec.prefix, "")):
            return spec
    matching = [s for s in ks.schema.entities if entry.key.startswith(names.doc_key(s.prefix, ""))]
    return max(matching, key=lambda s: len(s.prefix), default=None)
