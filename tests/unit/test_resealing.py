"""Idempotency-Key outcome records re-sealed by ``rotate-key`` (keyspace.resealing, pure)."""

from __future__ import annotations

import pytest

from keyspace import codec, crypto, idempotency
from keyspace.crypto import Cipher
from keyspace.errors import Unreadable
from keyspace.resealing import resealed_record
from keyspace.schema import EntitySpec
from keyspace.sealing import Sealer
from keyspace.systems.multiframe.entities import NFT, USER

K1, K2, K3 = bytes(range(32)), bytes(range(1, 33)), bytes(range(2, 34))
SPECS = (USER, NFT)
EMAIL = "Holo@Misha.com"
OWNER = "0x" + "Ab" * 20


def sealer(*keys: bytes, current: bytes) -> Sealer:
    held = {crypto.key_id(k): k for k in keys}
    return Sealer(Cipher(held, crypto.key_id(current), b"b" * 32))


def user(n: int) -> dict[str, str]:
    return {"user_id": f"user_{n}", "username": f"u{n}", "email": EMAIL, "role": "designer"}


def stored(by: Sealer, spec: EntitySpec, doc: dict[str, str]) -> bytes:
    return codec.dumps(by.seal(spec, doc[spec.id_field], doc))


def record(kind: str, *docs: bytes) -> bytes:
    return idempotency.done_head("f" * 64, 201, kind) + b"\n".join(docs)


def test_a_doc_outcome_is_sealed_again_under_the_current_key_with_its_head() -> None:
    old, rotating = sealer(K1, current=K1), sealer(K1, K2, current=K2)
    nft = {"nft_id": "nft_1", "user_id": "user_1", "chip_id": "c1", "owner": OWNER}
    cases: tuple[tuple[EntitySpec, dict[str, str]], ...] = ((USER, user(1)), (NFT, nft))
    for spec, doc in cases:
        raw = record("doc", stored(old, spec, doc))
        new = resealed_record(rotating, SPECS, raw)
        assert new is not None and crypto.key_id(K1).encode() not in new
        parsed = idempotency.parse(new)
        assert parsed is not None and (parsed.fingerprint, parsed.status, parsed.kind) == (
            "f" * 64,
            201,
            "doc",
        )
        opened = sealer(K2, current=K2).open(spec, doc[spec.id_field], codec.loads(parsed.body))
        assert {k: opened[k] for k in doc} == doc


def test_a_batch_outcome_keeps_its_order_and_the_documents_already_current() -> None:
    old, rotating = sealer(K1, current=K1), sealer(K1, K2, current=K2)
    current = stored(rotating, USER, user(2))
    raw = record("docs", stored(old, USER, user(1)), current)
    new = resealed_record(rotating, SPECS, raw)
    assert new is not None
    parsed = idempotency.parse(new)
    assert parsed is not None
    first, second = parsed.body.split(b"\n")
    assert second == current and codec.loads(first)["user_id"] == "user_1"
    assert crypto.parse_sealed(codec.loads(first)["email"]).kid == crypto.key_id(K2)  # type: ignore[union-attr]


def test_what_needs_nothing_is_left_alone() -> None:
    rotating = sealer(K1, K2, current=K2)
    for raw in (
        idempotency.pending_record("f" * 64, "token"),
        record("body", b'{"error": {"code": "x"}}'),
        record("none"),
        record("doc", stored(rotating, USER, user(1))),  # sealed under the current key
        record("doc", codec.dumps(user(1))),  # plaintext: no entity to seal it for
        b"garbage",
    ):
        assert resealed_record(rotating, SPECS, raw) is None


def test_a_value_under_a_key_not_held_is_unreadable() -> None:
    raw = record("doc", stored(sealer(K3, current=K3), USER, user(1)))
    with pytest.raises(Unreadable):
        resealed_record(sealer(K1, K2, current=K2), SPECS, raw)
