"""Engineering Forge, declared: the nine PostgreSQL tables of the seed's database design.

Names are the seed's (snake_case; the table name is both the entity and the key prefix,
so keys read ``engineering_forge:users:<uuid>``). Where the seed is silent, PostgreSQL's
rules apply: UUID ids, a foreign key without ON DELETE is NO ACTION (the delete of its
target is refused). Columns are nullable unless NOT NULL, except those with a DEFAULT:
every insert gets the default, so they are declared non-null (an explicit null is
refused). ``updated_at`` is touched on every write, as the ORM the seed uses would.
Each decision and deviation is recorded in docs/systems.md.
"""

from __future__ import annotations

from typing import Any

from ...declare import (
    NOW,
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
from ...schema import IdStrategy, OnDelete, Schema
from ...system import System
from .models import NftMetadata, PerformanceMetrics, Preferences, ProjectComponents

# PostgreSQL's INTEGER.
_INT_MAX = 2_147_483_647
# INET as text: an IPv4 or IPv6 address with an optional prefix length. The shape is
# checked, not the address (45 characters: the longest IPv4-mapped IPv6 spelling).
_INET = r"^[0-9A-Fa-f:.]{2,45}(/[0-9]{1,3})?$"


def _created() -> Any:
    return timestamp("created_at", default=NOW, index=True, sortable=True)


def _updated() -> Any:
    return timestamp("updated_at", default=NOW, updated_at=True)


def _active(*, index: bool = True) -> Any:
    return boolean("is_active", default=True, index=index)


def _minutes(name: str) -> Any:
    return integer(name, null=True, ge=0, le=_INT_MAX)


USERS = table(
    "users",
    collection="users",
    id=IdStrategy.UUID,
    fields=(
        string(
            "email",
            max_length=255,
            unique=True,
            case_insensitive=True,
            index=True,
            format="email",
        ),
        string(
            "username", null=True, max_length=50, unique=True, case_insensitive=True, index=True
        ),
        string("wallet_address", null=True, max_length=44, index=True),
        string("avatar_url", null=True),
        json("preferences", model=Preferences, default={}),
        string("academic_level", max_length=20, default="beginner", index=True),
        integer("total_xp", default=0, ge=0, le=_INT_MAX),
        _created(),
        _updated(),
        timestamp("last_login", null=True),
        _active(index=False),
        boolean("email_verified", default=False),
        boolean("wallet_verified", default=False),
        # pgcrypto's columns: stored encrypted when the keyspace has a key (docs/encryption.md);
        # the API reads and writes their plaintext, as pgp_sym_decrypt would give it.
        string("encrypted_ssn", null=True, max_length=64, sensitive=True),
        string("encrypted_private_key", null=True, max_length=512, sensitive=True),
    ),
    owner="id",
    # The seed's user_own_data policy on its pgcrypto columns: a member reads its own.
    private_fields=("encrypted_ssn", "encrypted_private_key"),
)

COURSES = table(
    "courses",
    collection="courses",
    id=IdStrategy.UUID,
    fields=(
        text("title", max_length=255, multiline=False),
        text("description", null=True),
        string("discipline", max_length=50, index=True),
        string("difficulty_level", max_length=20, index=True),
        _minutes("estimated_duration"),
        json("prerequisites", null=True),
        json("learning_objectives", null=True),
        json("content_structure", null=True),
        _active(),
        _created(),
        _updated(),
        ref(
            "created_by",
            "users",
            null=True,
            on_delete=OnDelete.RESTRICT,
            index=True,
            relation="courses",
        ),
        integer("version", default=1, ge=1, le=_INT_MAX),
    ),
    # The catalogue is curated: Engineering Forge has no instructor role, so courses,
    # lessons and achievement definitions are written with the operator's token.
    owner=None,
)

LESSONS = table(
    "lessons",
    collection="lessons",
    id=IdStrategy.UUID,
    fields=(
        ref(
            "course_id",
            "courses",
            null=True,
            on_delete=OnDelete.CASCADE,
            index=True,
            relation="lessons",
        ),
        text("title", max_length=255, multiline=False),
        text("description", null=True),
        json("content"),
        enum("lesson_type", ("theory", "interactive", "project"), index=True),
        integer("order_index", ge=0, le=_INT_MAX, index=True, sortable=True),
        _minutes("estimated_duration"),
        json("prerequisites", null=True),
        json("learning_outcomes", null=True),
        _active(),
        _created(),
        _updated(),
    ),
    owner=None,
)

USER_PROGRESS = table(
    "user_progress",
    collection="user_progress",
    id=IdStrategy.UUID,
    fields=(
        ref(
            "user_id",
            "users",
            null=True,
            on_delete=OnDelete.CASCADE,
            index=True,
            relation="user_progress",
        ),
        ref(
            "course_id",
            "courses",
            null=True,
            on_delete=OnDelete.CASCADE,
            index=True,
            relation="user_progress",
        ),
        decimal(
            "progress_percentage",
            max_digits=5,
            places=2,
            default="0",
            index=True,
            sortable=True,
        ),
        json("completed_lessons", default=[]),
        # ON DELETE SET NULL from the seed's constraint fk_user_progress_lesson.
        ref(
            "current_lesson_id",
            "lessons",
            null=True,
            on_delete=OnDelete.SET_NULL,
            index=True,
            relation="user_progress",
        ),
        timestamp("started_at", default=NOW, index=True, sortable=True),
        timestamp("completed_at", null=True, index=True),
        timestamp("last_accessed_at", default=NOW, index=True, sortable=True),
        integer("time_spent", default=0, ge=0, le=_INT_MAX),  # minutes
    ),
    unique_together=(("user_id", "course_id"),),
    owner="user_id",
)

PROJECTS = table(
    "projects",
    collection="projects",
    id=IdStrategy.UUID,
    fields=(
        ref(
            "user_id",
            "users",
            null=True,
            on_delete=OnDelete.CASCADE,
            index=True,
            relation="projects",
        ),
        ref(
            "course_id",
            "courses",
            null=True,
            on_delete=OnDelete.CASCADE,
            index=True,
            relation="projects",
        ),
        text("title", max_length=255, multiline=False),
        text("description", null=True),
        string("project_type", max_length=50, index=True),
        json("components", model=ProjectComponents),
        json("performance_metrics", null=True, model=PerformanceMetrics),
        string("nft_token_id", null=True, max_length=44, index=True),
        json("nft_metadata", null=True, model=NftMetadata),
        boolean("is_public", default=False, index=True),
        boolean("is_featured", default=False, index=True),
        integer("view_count", default=0, ge=0, le=_INT_MAX, index=True, sortable=True),
        integer("like_count", default=0, ge=0, le=_INT_MAX, index=True, sortable=True),
        _created(),
        _updated(),
    ),
    owner="user_id",
)

ACHIEVEMENT_DEFINITIONS = table(
    "achievement_definitions",
    collection="achievement_definitions",
    id=IdStrategy.UUID,
    fields=(
        text("title", max_length=255, multiline=False),
        text("description", null=True),
        string("achievement_type", max_length=50, index=True),
        json("criteria"),
        string("icon_url", null=True),
        integer("xp_reward", default=0, ge=0, le=_INT_MAX),
        _active(),
        _created(),
        _updated(),
    ),
    owner=None,
)

ACHIEVEMENTS = table(
    "achievements",
    collection="achievements",
    id=IdStrategy.UUID,
    fields=(
        ref(
            "user_id",
            "users",
            null=True,
            on_delete=OnDelete.CASCADE,
            index=True,
            relation="achievements",
        ),
        string("achievement_type", max_length=50, index=True),
        text("title", max_length=255, multiline=False),
        text("description", null=True),
        string("icon_url", null=True),
        string("nft_token_id", null=True, max_length=44, index=True),
        timestamp("earned_at", default=NOW, index=True, sortable=True),
        json("metadata", default={}),
        # Not in the table: the ER diagram's AchievementDefinitions (1) - (N) Achievements
        # has no column. An achievement keeps its own copy of the definition's title and
        # type (what was earned stays as earned); this names the definition it came from.
        ref(
            "achievement_definition_id",
            "achievement_definitions",
            null=True,
            on_delete=OnDelete.RESTRICT,
            index=True,
            relation="achievements",
        ),
    ),
    owner=None,  # awarded by the platform when a definition's criteria are met (XP, NFTs)
)

USER_SESSIONS = table(
    "user_sessions",
    collection="user_sessions",
    id=IdStrategy.UUID,
    fields=(
        ref(
            "user_id",
            "users",
            null=True,
            on_delete=OnDelete.CASCADE,
            index=True,
            relation="user_sessions",
        ),
        string("session_token", max_length=255, unique=True, case_insensitive=False, index=True),
        string("ip_address", null=True, max_length=49, pattern=_INET),
        string("user_agent", null=True),
        timestamp("expires_at", index=True, sortable=True),
        _created(),
        timestamp("last_accessed_at", default=NOW),
    ),
    owner=None,  # issued by the platform's login, not by their holder
    admin_read=True,  # session_token is a credential: no member reads another's
)

ANALYTICS_EVENTS = table(
    "analytics_events",
    collection="analytics_events",
    id=IdStrategy.UUID,
    fields=(
        ref(
            "user_id",
            "users",
            null=True,
            on_delete=OnDelete.SET_NULL,
            index=True,
            relation="analytics_events",
        ),
        string("event_type", max_length=100, index=True),
        json("event_data"),
        string("session_id", null=True, max_length=255, index=True),
        string("ip_address", null=True, max_length=49, pattern=_INET),
        string("user_agent", null=True),
        _created(),
    ),
    owner=None,  # logged by the platform, which observes the address and agent
    admin_read=True,  # IP addresses and agents of every user: personal data
)

SYSTEM = System(
    name="engineering_forge",
    title="Engineering Forge",
    # Referenced tables before their referrers: load-demo creates in this order.
    schema=Schema(
        entities=(
            USERS,
            COURSES,
            LESSONS,
            USER_PROGRESS,
            PROJECTS,
            ACHIEVEMENT_DEFINITIONS,
            ACHIEVEMENTS,
            USER_SESSIONS,
            ANALYTICS_EVENTS,
        )
    ),
    namespace="engineering_forge:",
    principal="users",
    # No role column: every user is a member; admins are the operator's token.
    role_fields=(),
    # What the platform grants or verifies: XP, the account's state, the verified flags
    # together with the values they vouch for, login times and the account's age.
    admin_only_fields=(
        "email",
        "email_verified",
        "wallet_address",
        "wallet_verified",
        "encrypted_ssn",
        "encrypted_private_key",
        "total_xp",
        "is_active",
        "last_login",
        "created_at",
    ),
    demo="engineering_forge",
)
