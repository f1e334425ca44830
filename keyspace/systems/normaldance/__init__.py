"""NORMALDANCE, declared: the twelve Prisma models of the seed's database design.

Names are the seed's (camelCase fields; the entity name is the model name in snake_case,
so keys read ``normaldance:user:<id>``). Where the seed is silent, Prisma's own rules
apply: cuid ids, a required relation restricts the delete of its target, an optional one
is set to null, and ``@updatedAt`` is set on every write. Each decision where the seed is
defective (the Track-NFT relation without a foreign key, ``NFT.collection`` without
``@relation``, the half-declared transaction relations) is recorded in docs/systems.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ...declare import (
    NOW,
    bigint,
    boolean,
    decimal,
    enum,
    integer,
    json,
    ref,
    string,
    table,
    text,
    timestamp,
)
from ...schema import IdStrategy, OnDelete, Schema, Unique
from ...system import ADMIN, MEMBER, System

# Prisma's Int is PostgreSQL's integer; the seed's Int fields are counts and sizes.
_INT_MAX = 2_147_483_647

# Prisma's Decimal is PostgreSQL's DECIMAL(65,30): 65 significant digits, 30 after the
# point. An indexed decimal keeps the index's 15 (keyspace.declare.decimal), so only prices
# and the APY are filters; balances and amounts keep Prisma's precision.
_PRISMA_DIGITS = 65

# A required relation: Prisma's default onDelete is Restrict.
_RESTRICT = OnDelete.RESTRICT
# An optional relation: Prisma's default onDelete is SetNull.
_SET_NULL = OnDelete.SET_NULL


def _created() -> Any:
    return timestamp("createdAt", default=NOW, index=True, sortable=True)


def _updated(*, index: bool = False) -> Any:
    return timestamp("updatedAt", default=NOW, updated_at=True, index=index, sortable=index)


def _count(name: str) -> Any:
    return integer(name, default=0, ge=0, le=_INT_MAX)


def _amount(name: str) -> Any:
    return decimal(name, default="0", max_digits=_PRISMA_DIGITS)


USER = table(
    "user",
    collection="users",
    id=IdStrategy.CUID,
    fields=(
        # Emails and usernames are one account whatever their case; wallet addresses
        # (base58, base64url) and Telegram ids are compared exactly.
        string("email", null=True, unique=True, case_insensitive=True, index=True, format="email"),
        string("username", null=True, unique=True, case_insensitive=True, index=True),
        string("walletAddress", null=True, unique=True, case_insensitive=False, index=True),
        string("telegramId", null=True, unique=True, case_insensitive=False, index=True),
        string("avatar", null=True),
        text("bio", null=True),
        boolean("isArtist", default=False, index=True),
        boolean("isCurator", default=False, index=True),
        boolean("isAdmin", default=False, index=True),
        _created(),
        _updated(),
    ),
    owner="id",
)

WALLET = table(
    "wallet",
    collection="wallets",
    id=IdStrategy.CUID,
    fields=(
        string("address", unique=True, case_insensitive=False, index=True),
        string("chain", index=True),  # 'solana', 'ton', 'ethereum', etc.: open
        string("provider", null=True, index=True),  # 'phantom', 'tonkeeper', etc.: open
        boolean("isPrimary", default=False, index=True),
        _created(),
        _updated(),
    ),
    # A wallet proves itself by a signature the platform checks; no field names its user.
    owner=None,
)

USER_WALLET = table(
    "user_wallet",
    collection="user_wallets",
    id=IdStrategy.CUID,
    fields=(
        ref("userId", "user", on_delete=_RESTRICT, index=True, relation="wallets"),
        ref("walletId", "wallet", on_delete=_RESTRICT, index=True, relation="userWallets"),
        _created(),
    ),
    unique_together=(("userId", "walletId"),),
    # Linking a wallet claims it: the platform writes the link once the signature checks.
    owner=None,
)

SESSION = table(
    "session",
    collection="sessions",
    id=IdStrategy.CUID,
    fields=(
        ref("userId", "user", on_delete=_RESTRICT, index=True, relation="sessions"),
        string("token", unique=True, case_insensitive=False, index=True),
        timestamp("expiresAt", index=True, sortable=True),
        _created(),
        _updated(),
    ),
    owner=None,  # sessions are issued by the platform's login, not by their holder
    admin_read=True,  # a session token is a credential: no member reads another's
)

TRACK = table(
    "track",
    collection="tracks",
    id=IdStrategy.CUID,
    fields=(
        text("title", multiline=False),
        text("description", null=True),
        string("coverImage", null=True),
        string("audioUrl"),  # IPFS hash
        ref("artistId", "user", on_delete=_RESTRICT, index=True, relation="tracks"),
        string("genre", null=True, index=True),
        integer("duration", ge=0, le=_INT_MAX),  # seconds
        timestamp("releaseDate", default=NOW, index=True, sortable=True),
        decimal("price", null=True, index=True),
        boolean("isNFT", default=False, index=True),
        string("nftContract", null=True),
        _count("playCount"),
        _count("likeCount"),
        json("metadata", null=True),
        _created(),
        _updated(),
    ),
    owner="artistId",
)

TRACK_FILE = table(
    "track_file",
    collection="track_files",
    id=IdStrategy.CUID,
    fields=(
        ref("trackId", "track", on_delete=_RESTRICT, index=True, relation="files"),
        string("ipfsHash", index=True),  # IPFS content identifier
        enum("fileType", ("audio", "cover", "metadata"), index=True),
        string("fileName", null=True),
        integer("fileSize", null=True, ge=0, le=_INT_MAX),
        string("mimeType", null=True),
        boolean("isPinned", default=True, index=True),
        _created(),
    ),
    owner=None,  # written by the platform's upload and pinning service
)

NFT_COLLECTION = table(
    "nft_collection",
    collection="nft_collections",
    id=IdStrategy.CUID,
    fields=(
        text("name", multiline=False),
        text("description", null=True),
        # User has no back-relation field for it; the route is named as Prisma would add it.
        ref("creatorId", "user", on_delete=_RESTRICT, index=True, relation="nftCollections"),
        string("contractAddress", unique=True, case_insensitive=False, index=True),
        _count("totalSupply"),
        _count("mintedCount"),
        decimal("price", null=True, index=True),
        decimal("royaltyPercent", null=True, default="2.5", max_digits=_PRISMA_DIGITS),
        json("metadata", null=True),
        boolean("isActive", default=True, index=True),
        _created(),
        _updated(),
    ),
    owner="creatorId",
)

NFT = table(
    "nft",
    collection="nfts",
    id=IdStrategy.CUID,
    fields=(
        string("tokenId", unique=True, case_insensitive=False, index=True),
        string("contractAddress", index=True),
        text("name", multiline=False),
        text("description", null=True),
        string("imageUrl", null=True),  # IPFS hash
        ref("owner", "user", on_delete=_RESTRICT, index=True, relation="nfts"),
        ref("creatorId", "user", on_delete=_RESTRICT, index=True, relation="createdNfts"),
        # The seed declares `collection NFTCollection?` without @relation: wired here.
        ref(
            "collectionId",
            "nft_collection",
            null=True,
            on_delete=_SET_NULL,
            index=True,
            relation="nfts",
        ),
        decimal("price", null=True, index=True),
        boolean("isListed", default=False, index=True),
        json("metadata", null=True),
        string("blockchainTx", null=True, index=True),  # transaction hash
        # Not in the seed: Track.nft / NFT.track have no foreign key on either side. The
        # NFT names the track it tokenizes; unique, so a track has at most one NFT.
        replace(
            ref("trackId", "track", null=True, on_delete=_SET_NULL, index=True, relation="nft"),
            unique=Unique("trackId", case_insensitive=False),
        ),
        _created(),
        _updated(),
    ),
    owner="owner",
)

NFT_METADATA = table(
    "nft_metadata",
    collection="nft_metadata",
    id=IdStrategy.CUID,
    fields=(
        ref("nftId", "nft", on_delete=_RESTRICT, index=True, relation="metadataDetails"),
        string("ipfsHash", unique=True, case_insensitive=False, index=True),
        text("name", multiline=False),
        text("description", null=True),
        json("attributes", null=True),
        string("externalUrl", null=True),
        _created(),
    ),
    owner=None,  # pinned off-chain by the platform's minting service
)

TRANSACTION = table(
    "transaction",
    collection="transactions",
    id=IdStrategy.CUID,
    fields=(
        ref("nftId", "nft", null=True, on_delete=_SET_NULL, index=True, relation="transactions"),
        ref(
            "sellerId",
            "user",
            null=True,
            on_delete=_SET_NULL,
            index=True,
            relation="soldTransactions",
        ),
        ref(
            "buyerId",
            "user",
            null=True,
            on_delete=_SET_NULL,
            index=True,
            relation="boughtTransactions",
        ),
        string("transactionHash", unique=True, case_insensitive=False, index=True),
        decimal("price", null=True, index=True),
        decimal("fee", null=True, default="0", max_digits=_PRISMA_DIGITS),
        enum("transactionType", ("mint", "transfer", "sale", "stake", "unstake"), index=True),
        enum("status", ("pending", "completed", "failed"), default="pending", index=True),
        enum("chain", ("solana", "ton"), index=True),
        bigint("blockNumber", null=True),
        bigint("gasUsed", null=True),
        json("metadata", null=True),
        _created(),
    ),
    # A ledger entry: it records what happened on chain and names two users, neither its
    # owner. Members read it; the platform's indexer writes it.
    owner=None,
)

MUSIC_TOKEN = table(
    "music_token",
    collection="music_tokens",
    id=IdStrategy.CUID,
    fields=(
        ref("userId", "user", on_delete=_RESTRICT, index=True, relation="tokens"),
        _amount("balance"),
        _amount("totalEarned"),
        _amount("totalSpent"),
        timestamp("lastClaimed", null=True, index=True),
        _created(),
        _updated(index=True),
    ),
    owner=None,  # balances: a holder who could write them could mint
)

STAKING = table(
    "staking",
    collection="stakings",
    id=IdStrategy.CUID,
    fields=(
        ref("userId", "user", on_delete=_RESTRICT, index=True, relation="staking"),
        ref("tokenId", "music_token", on_delete=_RESTRICT, index=True, relation="staking"),
        decimal("amount", max_digits=_PRISMA_DIGITS),
        timestamp("startDate", default=NOW, index=True, sortable=True),
        timestamp("endDate", null=True, index=True),
        integer("duration", ge=0, le=_INT_MAX),  # days
        decimal("apy", default="15.0", index=True, sortable=True),
        _amount("rewards"),
        _amount("claimedRewards"),
        boolean("isActive", default=True, index=True),
        json("metadata", null=True),
        _created(),
        _updated(),
    ),
    owner=None,  # amounts, APY and rewards move token balances: the platform writes them
)


def role_of(user: Mapping[str, Any]) -> str:
    """``isAdmin: true`` is an admin; every other user is a member."""
    return ADMIN if user.get("isAdmin") is True else MEMBER


SYSTEM = System(
    name="normaldance",
    title="NORMALDANCE",
    # Referenced entities before their referrers: load-demo creates in this order.
    schema=Schema(
        entities=(
            USER,
            WALLET,
            USER_WALLET,
            SESSION,
            TRACK,
            TRACK_FILE,
            NFT_COLLECTION,
            NFT,
            NFT_METADATA,
            TRANSACTION,
            MUSIC_TOKEN,
            STAKING,
        )
    ),
    namespace="normaldance:",
    principal="user",
    role_of=role_of,
    role_fields=("isAdmin",),
    # Trust the platform grants or proves: the admin flag, curation, the login identities
    # it verified (a wallet signature, a Telegram login), and the account's age.
    admin_only_fields=("isAdmin", "isCurator", "walletAddress", "telegramId", "createdAt"),
    demo="normaldance",
    # Created on a first start without an operator token; a cuid-shaped id that reads as one.
    admin_user={"id": "cnormaldanceadmin00000000", "username": "admin", "isAdmin": True},
)
