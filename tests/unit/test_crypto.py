"""The pure half of field encryption: keys, sealed values, blind tokens and the keyring."""

from __future__ import annotations

import base64

import pytest

from keyspace import crypto, keyring
from keyspace.crypto import Cipher, Undecryptable
from keyspace.errors import Unreadable, ValidationFailed
from keyspace.sealing import Sealer
from keyspace.systems.multiframe.entities import NFT, USER

K1 = bytes(range(32))
K2 = bytes(range(1, 33))
BLIND = b"b" * 32


def sealer(*keys: bytes, current: bytes = K1, plaintext_left: bool = False) -> Sealer:
    held = {crypto.key_id(k): k for k in (keys or (current,))}
    cipher = Cipher(held, crypto.key_id(current), BLIND)
    return Sealer(cipher, plaintext_left=plaintext_left, keyring_key="mf:crypto")


def test_keys_parse_from_hex_and_base64_and_nothing_else() -> None:
    assert crypto.parse_key(K1.hex()) == K1
    assert crypto.parse_key(base64.b64encode(K1).decode() + "\n") == K1
    assert crypto.parse_key(base64.urlsafe_b64encode(K1).decode()) == K1
    for bad in ("", "short", K1.hex()[:-2], base64.b64encode(K1[:16]).decode()):
        with pytest.raises(crypto.BadKey):
            crypto.parse_key(bad)


def test_key_ids_name_keys_without_revealing_them() -> None:
    assert crypto.key_id(K1) != crypto.key_id(K2)
    assert len(crypto.key_id(K1)) == 8 and crypto.key_id(K1) not in K1.hex()


def test_a_sealed_value_round_trips_and_carries_its_key_id_and_token() -> None:
    s = sealer()
    doc = {"user_id": "user_1", "username": "Holo", "email": "Holo@Misha.com", "role": "admin"}
    sealed = s.seal(USER, "user_1", doc)
    assert "Holo@Misha.com" not in str(sealed) and "holo@misha.com" not in str(sealed)
    parts = crypto.parse_sealed(sealed["email"])
    assert parts is not None and parts.kid == crypto.key_id(K1)
    assert parts.token == s.token(USER, USER.sensitive[0], "holo@MISHA.com")  # caseless
    assert sealed["username"] == "Holo"  # only declared fields are sealed
    assert s.open(USER, "user_1", sealed) == doc
    again = s.seal(USER, "user_1", doc)
    assert again["email"] != sealed["email"]  # a fresh nonce every time


def test_a_value_moved_to_another_document_or_field_does_not_open() -> None:
    s = sealer()
    sealed = s.seal(USER, "user_1", {"email": "a@b.co"})
    with pytest.raises(Unreadable):
        s.open(USER, "user_2", sealed)
    with pytest.raises(Unreadable):  # another entity's field of the same name and id
        s.open(NFT, "user_1", {"owner": sealed["email"]})
    tampered = sealed["email"][:-2] + ("A" if sealed["email"][-2] != "A" else "B") + "x"
    with pytest.raises(Unreadable):
        s.open(USER, "user_1", {"email": tampered})


def test_a_blind_token_changed_in_place_does_not_open() -> None:
    s = sealer()
    sealed = s.seal(USER, "user_1", {"email": "a@b.co"})["email"]
    other = s.token(USER, USER.sensitive[0], "c@d.co").removeprefix("enc:")
    kid, _, body = sealed.removeprefix(crypto.PREFIX).split(":")
    with pytest.raises(Unreadable):
        s.open(USER, "user_1", {"email": f"{crypto.PREFIX}{kid}:{other}:{body}"})


def test_a_wrong_key_opens_nothing() -> None:
    sealed = sealer().seal(USER, "user_1", {"email": "a@b.co"})
    wrong = Cipher({crypto.key_id(K1): K2}, crypto.key_id(K1), BLIND)  # same id, wrong key
    with pytest.raises(Unreadable):
        Sealer(wrong).open(USER, "user_1", sealed)
    with pytest.raises(Unreadable):  # a key id not held
        sealer(K2, current=K2).open(USER, "user_1", sealed)
    with pytest.raises(Undecryptable):
        crypto.unwrap(K2, crypto.wrap(K1, b"secret", b"aad"), b"aad")


def test_blind_tokens_fold_case_where_the_field_does_and_separate_fields() -> None:
    s = sealer()
    email, owner = USER.sensitive[0], NFT.sensitive[0]
    assert s.token(USER, email, "A@B.co") == s.token(USER, email, "a@b.CO")
    assert s.token(USER, email, "a@b.co") != s.token(NFT, owner, "a@b.co")
    other = Sealer(Cipher({crypto.key_id(K1): K1}, crypto.key_id(K1), b"x" * 32))
    assert s.token(USER, email, "a@b.co") != other.token(USER, email, "a@b.co")


def test_an_unchanged_value_keeps_its_ciphertext_and_a_changed_one_does_not() -> None:
    s = sealer()
    old = s.seal(USER, "user_1", {"email": "a@b.co", "username": "x"})
    assert (
        s.seal(USER, "user_1", {"email": "a@b.co", "username": "y"}, old)["email"] == (old["email"])
    )
    assert s.seal(USER, "user_1", {"email": "c@b.co"}, old)["email"] != old["email"]
    rotated = sealer(K1, K2, current=K2)
    assert rotated.seal(USER, "user_1", {"email": "a@b.co"}, old)["email"] != old["email"]
    assert rotated.stale(USER, old) and not s.stale(USER, old)
    assert s.stale(USER, {"email": "a@b.co"}) and not s.stale(USER, {"email": None})


def test_only_the_full_sealed_form_is_reserved_and_any_plaintext_is_sealed() -> None:
    s = sealer()
    real = s.seal(USER, "user_1", {"email": "a@b.co"})["email"]
    token = s.token(USER, USER.sensitive[0], "a@b.co")
    assert crypto.reserved(real) and crypto.reserved(token)
    for plain in ("enc:x@example.com", "enc:v1:whatever", "enc:", real + "!", token + "0"):
        assert not crypto.reserved(plain), plain
    # Whatever a plaintext looks like, sealing stores it sealed, and it opens as it was.
    for plain in ("enc:x@example.com", real, token):
        sealed = s.seal(USER, "user_1", {"email": plain})
        assert crypto.parse_sealed(sealed["email"]) is not None
        assert s.open(USER, "user_1", sealed)["email"] == plain
        assert not s.stale(USER, sealed)
    assert s.stale(USER, {"email": "enc:x@example.com"})  # plaintext for encrypt to seal


def test_a_client_may_not_write_a_value_in_the_reserved_form_unless_already_stored() -> None:
    from keyspace.sealing import refuse_reserved, validate_stored

    real = sealer().seal(USER, "user_1", {"email": "a@b.co"})["email"]
    for value in (real, sealer().token(USER, USER.sensitive[0], "a@b.co")):
        with pytest.raises(ValidationFailed, match="form of an encrypted value"):
            refuse_reserved(USER, {"email": value})
        refuse_reserved(USER, {"email": value, "role": "x"}, {"email": value})  # unchanged
    refuse_reserved(USER, {"email": "enc:x@example.com"})
    doc = {
        "user_id": "user_1",
        "username": "eve",
        "email": "enc:x@example.com",
        "role": "admin",
        "created_at": "2025-01-01T00:00:00",
    }
    assert validate_stored(USER, doc)["email"] == "enc:x@example.com"  # plaintext, as declared


def test_equality_queries_ask_for_tokens_and_for_plaintext_only_while_some_is_left() -> None:
    from keyspace import parse

    query = parse(USER, {"email": ["A@B.co"], "role": ["admin"]})
    blinded = sealer().query(USER, query)
    (email, values), (_, roles) = blinded.equals
    assert email.name == "email" and values == (sealer().token(USER, USER.sensitive[0], "a@b.co"),)
    assert roles == ("admin",)
    converting = sealer(plaintext_left=True).query(USER, query)
    assert converting.equals[0][1][1] == "a@b.co"


def test_ranges_sorts_and_groups_over_sensitive_fields_are_refused_clearly() -> None:
    from keyspace import parse
    from keyspace.aggregate import parse_aggregation

    for params in ({"email_min": ["a"]}, {"sort": ["email"]}):
        with pytest.raises(ValidationFailed, match="sensitive field, stored encrypted"):
            parse(USER, params)
    with pytest.raises(ValidationFailed, match="sensitive field"):
        parse_aggregation(NFT, {"group_by": ["owner"]})


def _ring(*, plaintext: bool = False) -> dict[str, str]:
    check, wrapped = keyring.check_entry(K1, BLIND)
    return {"version": "1", "current": crypto.key_id(K1), check: wrapped,
            "plaintext": "1" if plaintext else "0"}  # fmt: skip


def test_the_keyring_opens_with_its_key_and_says_what_is_wrong_otherwise() -> None:
    fields = _ring(plaintext=True)
    opened = keyring.unlock(fields, {crypto.key_id(K1): K1}, "mf:crypto")
    assert opened.cipher.blind_key == BLIND and opened.plaintext_left
    with pytest.raises(keyring.KeyringError, match="set MULTIFRAME_ENCRYPTION_KEY"):
        keyring.unlock(fields, {}, "mf:crypto")
    with pytest.raises(keyring.KeyringError, match="is not this keyspace's"):
        keyring.unlock(fields, {crypto.key_id(K2): K2}, "mf:crypto")
    forged = {**fields, f"check:{crypto.key_id(K2)}": fields[f"check:{crypto.key_id(K1)}"]}
    with pytest.raises(keyring.KeyringError, match="does not open"):
        keyring.unlock(forged, {crypto.key_id(K2): K2}, "mf:crypto")


def test_during_a_rotation_either_key_reads_both_and_after_it_the_old_one_is_refused() -> None:
    new_check, new_wrapped = keyring.check_entry(K2, BLIND)
    rotating = {**_ring(), "current": crypto.key_id(K2), new_check: new_wrapped}
    rotating.update(keyring.link_entries(K1, K2))
    for key in (K1, K2):
        opened = keyring.unlock(rotating, {crypto.key_id(key): key}, "mf:crypto")
        assert set(opened.cipher.keys) == {crypto.key_id(K1), crypto.key_id(K2)}
        assert opened.cipher.current == crypto.key_id(K2)
    done = {"version": "1", "current": crypto.key_id(K2), new_check: new_wrapped,
            f"retired:{crypto.key_id(K1)}": "2025-01-01T00:00:00"}  # fmt: skip
    with pytest.raises(keyring.KeyringError, match="retired by a rotation"):
        keyring.unlock(done, {crypto.key_id(K1): K1}, "mf:crypto")
    # A process that learned the new key before the old one was retired keeps working.
    both = {crypto.key_id(K1): K1, crypto.key_id(K2): K2}
    assert keyring.unlock(done, both, "mf:crypto").cipher.current == crypto.key_id(K2)


def test_the_key_comes_from_the_environment_or_a_file(tmp_path: object) -> None:
    from pathlib import Path

    assert keyring.configured({}) is None
    assert keyring.configured({keyring.ENV_KEY: K1.hex()}) == K1
    path = Path(str(tmp_path)) / "key"
    path.write_text(base64.b64encode(K2).decode() + "\n")
    assert keyring.configured({keyring.ENV_KEY_FILE: str(path)}) == K2
    with pytest.raises(keyring.KeyringError, match="not both"):
        keyring.configured({keyring.ENV_KEY: K1.hex(), keyring.ENV_KEY_FILE: str(path)})
    with pytest.raises(keyring.KeyringError, match="cannot read"):
        keyring.configured({keyring.ENV_KEY_FILE: str(path) + ".missing"})
    with pytest.raises(keyring.KeyringError, match="32 random bytes"):
        keyring.configured({keyring.ENV_KEY: "not a key"})


def test_a_sensitive_field_cannot_go_where_its_plaintext_would_show() -> None:
    from dataclasses import replace

    from keyspace.schema import FieldKind, Indexed, Sensitive, UniqueTogether

    sortable = tuple(
        Indexed("email", "email", FieldKind.TAG, sortable=True, case_sensitive=False)
        if f.name == "email"
        else f
        for f in USER.fields
    )
    with pytest.raises(AssertionError, match="unsorted scalar TAG"):
        replace(USER, fields=sortable)
    with pytest.raises(AssertionError, match="fold case alike"):
        replace(USER, sensitive=(Sensitive("email"),))
    with pytest.raises(AssertionError, match="composite unique"):
        replace(USER, unique_together=(UniqueTogether(("email", "username")),))
    with pytest.raises(AssertionError, match="cached answers"):
        replace(USER, cached=True)
    with pytest.raises(AssertionError, match="an id, a reference"):
        replace(NFT, sensitive=(Sensitive("user_id"),))
