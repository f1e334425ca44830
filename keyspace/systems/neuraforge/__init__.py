"""NeuraForge, declared: the relational part of the seed's database schema.

The seed (001) defines seven PostgreSQL tables (``users``, ``projects``, ``ai_agents``,
``research_trees``, ``collaborations`` in SQL; ``institutions`` and ``project_members`` only
in its ER diagram) and names seven more in the diagram without columns (``user_sessions``,
``ai_interactions``, ``documents``, ``document_versions``, ``tree_nodes``, ``node_versions``,
``agent_deployments``); those get the fields a user of such a platform would expect, each
recorded in docs/systems.md. Names are the seed's (snake_case; the table name is the entity,
the collection and the key prefix, so keys read ``neuraforge:users:<uuid>``).

PostgreSQL's rules apply where the seed is silent, as for Engineering Forge: UUID ids, a
``REFERENCES`` without ON DELETE is NO ACTION (the delete of its target is refused), a
column is nullable unless NOT NULL except when it has a DEFAULT (declared non-null), and
``updated_at`` is touched on every write. The seed's Redis layer and vector collections are
not declared yet (see the marked place above SYSTEM).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ...cache import CacheRules
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
    vector,
)
from ...features import Lockable, OpLog, Profile
from ...schema import IdStrategy, OnDelete, Schema, Unique
from ...system import System
from ...tokens import EndpointLimits

_CASCADE = OnDelete.CASCADE
# A REFERENCES without ON DELETE: PostgreSQL's NO ACTION refuses the delete of its target.
_RESTRICT = OnDelete.RESTRICT
_SET_NULL = OnDelete.SET_NULL

# PostgreSQL's INTEGER.
_INT_MAX = 2_147_483_647
# INET as text, as Engineering Forge declares it: the shape is checked, not the address.
_INET = r"^[0-9A-Fa-f:.]{2,45}(/[0-9]{1,3})?$"
# ISO 3166-1 alpha-2, as the seed's examples write it ("US").
_COUNTRY = r"^[A-Z]{2}$"
# A research document's body: longer than the DSL's 10,000 characters of prose, and still
# well inside a request body (1 MiB) in any script.
_DOCUMENT_CHARS = 100_000


def _created() -> Any:
    return timestamp("created_at", default=NOW, index=True, sortable=True)


def _updated() -> Any:
    return timestamp("updated_at", default=NOW, updated_at=True)


def _money(name: str, *, index: bool = False) -> Any:
    """The seed's money column, ai_agents.price_per_hour DECIMAL(10,4) DEFAULT 0.0000 (costs
    and metered hours use the same); never negative."""
    return decimal(name, max_digits=10, places=4, default="0", ge=0, index=index, sortable=index)


def _metadata() -> Any:
    return json("metadata", default={})


def _author(relation: str) -> Any:
    """Who wrote a row of an inferred table: the author owns it; their delete keeps it."""
    return ref("created_by", "users", null=True, on_delete=_SET_NULL, index=True, relation=relation)


# --- the seed's tables ------------------------------------------------------------------

# ER diagram only (INSTITUTIONS), and the seed's INSERT of MIT, Stanford, Google Research.
INSTITUTIONS = table(
    "institutions",
    collection="institutions",
    id=IdStrategy.UUID,
    fields=(
        text("name", max_length=255, multiline=False),
        string("type", null=True, max_length=50, index=True),  # 'university', 'company': open
        string("country_code", null=True, max_length=2, pattern=_COUNTRY, index=True),
        _metadata(),
        _created(),
    ),
    owner=None,  # a curated directory: affiliations point at it
)

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
        text("name", max_length=255, multiline=False),
        string("avatar_url", null=True),
        json("profile_data", default={}),
        string("orcid_id", null=True, max_length=50),
        ref(
            "institution_id",
            "institutions",
            null=True,
            on_delete=_RESTRICT,
            index=True,
            relation="users",
        ),
        # idx_users_verified_email (WHERE email_verified = TRUE) is ?email_verified=true.
        boolean("email_verified", default=False, index=True),
        _created(),
        _updated(),
        timestamp("last_login", null=True),
    ),
    owner="id",
    # The seed's user:profile:{user_id} (1 h): {"name", "avatar_url", "research_interests"},
    # the last from the user's user_profiles document (keyspace.profiles).
    profile=Profile(
        "user:profile",
        ("name", "avatar_url"),
        companion="user_profiles",
        via="user_id",
        companion_fields=("research_interests",),
    ),
)

# ER diagram only (USER_SESSIONS): the durable record of a login. The seed's Redis
# user:session:{session_id} (24 h) is the live side; it comes with the Redis layer.
USER_SESSIONS = table(
    "user_sessions",
    collection="user_sessions",
    id=IdStrategy.UUID,
    fields=(
        ref("user_id", "users", on_delete=_CASCADE, index=True, relation="user_sessions"),
        json("permissions", default=[]),  # as the Redis session's ["read", "write"]
        string("ip_address", null=True, max_length=49, pattern=_INET),
        string("user_agent", null=True),
        _created(),
        timestamp("last_activity", default=NOW),
        timestamp("expires_at", index=True, sortable=True),
        timestamp("revoked_at", null=True, index=True),
    ),
    owner=None,  # issued by the platform's login, not by their holder
    admin_read=True,  # addresses and agents of every login: personal data
)

PROJECTS = table(
    "projects",
    collection="projects",
    id=IdStrategy.UUID,
    fields=(
        text("name", max_length=200, multiline=False),
        text("description", null=True),
        enum("status", ("active", "completed", "archived"), default="active", index=True),
        enum("visibility", ("private", "internal", "public"), default="private", index=True),
        ref("owner_id", "users", on_delete=_CASCADE, index=True, relation="projects"),
        json("settings", default={}),
        _metadata(),
        # idx_projects_active (created_at DESC WHERE status = 'active') is
        # ?status=active&sort=-created_at.
        _created(),
        _updated(),
        timestamp("archived_at", null=True, index=True),
    ),
    owner="owner_id",
)

# ER diagram only (PROJECT_MEMBERS), with idx_project_members_project_user.
PROJECT_MEMBERS = table(
    "project_members",
    collection="project_members",
    id=IdStrategy.UUID,
    fields=(
        ref("project_id", "projects", on_delete=_CASCADE, index=True, relation="project_members"),
        ref("user_id", "users", on_delete=_CASCADE, index=True, relation="project_members"),
        # The seed lists no values: an open string ('lead', 'member', 'viewer', ...).
        string("role", max_length=50, default="member", index=True),
        json("permissions", default=[]),
        timestamp("joined_at", default=NOW, index=True, sortable=True),
        timestamp("last_active", null=True, index=True),
    ),
    unique_together=(("project_id", "user_id"),),  # one membership per user and project
    # Joining a project is the platform's invitation flow: with user_id as owner, any member
    # could add itself to any project (ownership through the project is not an engine rule).
    owner=None,
)

RESEARCH_TREES = table(
    "research_trees",
    collection="research_trees",
    id=IdStrategy.UUID,
    fields=(
        ref("project_id", "projects", on_delete=_CASCADE, index=True, relation="research_trees"),
        text("name", max_length=255, multiline=False),
        json("structure", default={"nodes": [], "edges": []}),
        _metadata(),
        # idx_research_trees_version and idx_research_trees_project_version (version DESC).
        integer("version", default=1, ge=1, le=_INT_MAX, index=True, sortable=True),
        ref(
            "parent_version_id",
            "research_trees",
            null=True,
            on_delete=_RESTRICT,
            index=True,
            relation="child_versions",
        ),
        _created(),
        _updated(),
    ),
    # No column names a user: trees are written by the platform for the project's members.
    owner=None,
)

# ER diagram only (TREE_NODES): the nodes a research tree contains.
TREE_NODES = table(
    "tree_nodes",
    collection="tree_nodes",
    id=IdStrategy.UUID,
    fields=(
        ref("tree_id", "research_trees", on_delete=_CASCADE, index=True, relation="tree_nodes"),
        ref(
            "parent_node_id",
            "tree_nodes",
            null=True,
            on_delete=_CASCADE,  # a node's subtree goes with it
            index=True,
            relation="child_nodes",
        ),
        string("node_type", max_length=50, index=True),  # 'question', 'hypothesis', ...: open
        text("title", max_length=255, multiline=False),
        text("content", null=True),
        json("position", default={}),  # where the editor draws it, e.g. {"x": 0, "y": 120}
        _metadata(),
        integer("version", default=1, ge=1, le=_INT_MAX),  # the latest node_versions row
        _author("tree_nodes"),
        _created(),
        _updated(),
    ),
    owner="created_by",
)

# ER diagram only (NODE_VERSIONS): a node's earlier states, one row per version.
NODE_VERSIONS = table(
    "node_versions",
    collection="node_versions",
    id=IdStrategy.UUID,
    fields=(
        ref("node_id", "tree_nodes", on_delete=_CASCADE, index=True, relation="node_versions"),
        integer("version", ge=1, le=_INT_MAX, index=True, sortable=True),
        text("title", max_length=255, multiline=False),
        text("content", null=True),
        text("change_summary", null=True, max_length=1000),
        _author("node_versions"),
        _created(),
    ),
    unique_together=(("node_id", "version"),),
    owner="created_by",
)

# ER diagram only (DOCUMENTS); project_stats reads d.project_id and d.updated_at.
DOCUMENTS = table(
    "documents",
    collection="documents",
    id=IdStrategy.UUID,
    fields=(
        ref("project_id", "projects", on_delete=_CASCADE, index=True, relation="documents"),
        text("title", max_length=255, multiline=False),
        text("content", default="", max_length=_DOCUMENT_CHARS),
        enum("content_type", ("markdown", "latex", "plain"), default="markdown", index=True),
        integer("version", default=1, ge=1, le=_INT_MAX),  # the latest document_versions row
        _metadata(),
        _author("documents"),
        _created(),
        # project_stats' last_activity: the first of ?project_id=X&sort=-updated_at.
        timestamp("updated_at", default=NOW, updated_at=True, index=True, sortable=True),
    ),
    owner="created_by",
    # The seed's Redis layer: doc:lock:{document_id} (30 s, with a fencing token) and
    # doc:ops:{document_id} (1 h after the last append, at most 10,000 operations).
    lock=Lockable(ttl_seconds=30, key="doc:lock"),
    oplog=OpLog(key="doc:ops", ttl_seconds=3600, cap=10000, lock_guarded=True),
)

# ER diagram only (DOCUMENT_VERSIONS): a document's saved states, one row per version.
DOCUMENT_VERSIONS = table(
    "document_versions",
    collection="document_versions",
    id=IdStrategy.UUID,
    fields=(
        ref(
            "document_id",
            "documents",
            on_delete=_CASCADE,
            index=True,
            relation="document_versions",
        ),
        integer("version", ge=1, le=_INT_MAX, index=True, sortable=True),
        text("title", max_length=255, multiline=False),
        text("content", max_length=_DOCUMENT_CHARS),
        text("change_summary", null=True, max_length=1000),
        _author("document_versions"),
        _created(),
    ),
    unique_together=(("document_id", "version"),),
    owner="created_by",
)

COLLABORATIONS = table(
    "collaborations",
    collection="collaborations",
    id=IdStrategy.UUID,
    fields=(
        ref("document_id", "documents", on_delete=_CASCADE, index=True, relation="collaborations"),
        ref("user_id", "users", on_delete=_CASCADE, index=True, relation="collaborations"),
        string("operation_type", max_length=50),  # no CHECK in the seed: open
        json("operation_data"),
        integer("position", null=True, ge=0, le=_INT_MAX),
        timestamp("timestamp", default=NOW, index=True, sortable=True),
        string("session_id", null=True, max_length=255, index=True),
    ),
    owner="user_id",  # a member records its own edits
)

AI_AGENTS = table(
    "ai_agents",
    collection="ai_agents",
    id=IdStrategy.UUID,
    fields=(
        text("name", max_length=255, multiline=False),
        string("version", max_length=50),
        string("category", max_length=100, index=True),
        json("capabilities", default=[]),
        json("configuration", default={}),
        # Not in the seed's indexes: a marketplace lists by price (filter and sort).
        _money("price_per_hour", index=True),
        integer("performance_score", default=0, ge=0, le=100, index=True, sortable=True),
        boolean("is_active", default=True, index=True),
        ref(
            "creator_id",
            "users",
            null=True,
            on_delete=_RESTRICT,
            index=True,
            relation="ai_agents",
        ),
        _created(),
        _updated(),
        # The seed's ai_agents vector collection: 768-d capability embeddings, cosine.
        vector("embedding", 768, null=True),
    ),
    unique_together=(("name", "version"),),
    # The agent catalogue is curated: performance_score is measured and is_active is a
    # moderation flag, neither for a creator to assert; creator_id records, grants nothing.
    owner=None,
)

# ER diagram only (AGENT_DEPLOYMENTS): an agent running for a project (PROJECTS uses
# AI_AGENTS through it).
AGENT_DEPLOYMENTS = table(
    "agent_deployments",
    collection="agent_deployments",
    id=IdStrategy.UUID,
    fields=(
        ref(
            "agent_id",
            "ai_agents",
            on_delete=_RESTRICT,  # an agent with a history is retired, not deleted
            index=True,
            relation="agent_deployments",
        ),
        ref("project_id", "projects", on_delete=_CASCADE, index=True, relation="agent_deployments"),
        ref(
            "deployed_by",
            "users",
            null=True,
            on_delete=_SET_NULL,
            index=True,
            relation="agent_deployments",
        ),
        enum("status", ("pending", "running", "stopped", "failed"), default="pending", index=True),
        json("configuration", default={}),  # overrides of the agent's configuration
        timestamp("started_at", null=True, index=True),
        timestamp("stopped_at", null=True),
        _money("hours_used"),
        _created(),
        _updated(),
    ),
    owner=None,  # the platform's orchestrator runs, meters and bills deployments
)

# ER diagram only (AI_INTERACTIONS), with idx_ai_interactions_user_timestamp
# (user_id, created_at DESC).
AI_INTERACTIONS = table(
    "ai_interactions",
    collection="ai_interactions",
    id=IdStrategy.UUID,
    fields=(
        ref("user_id", "users", on_delete=_CASCADE, index=True, relation="ai_interactions"),
        ref("agent_id", "ai_agents", on_delete=_RESTRICT, index=True, relation="ai_interactions"),
        ref(
            "project_id",
            "projects",
            null=True,
            on_delete=_SET_NULL,  # the user's history outlives the project
            index=True,
            relation="ai_interactions",
        ),
        text("prompt", max_length=_DOCUMENT_CHARS),
        text("response", null=True, max_length=_DOCUMENT_CHARS),
        enum("status", ("pending", "completed", "failed"), default="pending", index=True),
        integer("tokens_used", default=0, ge=0, le=_INT_MAX),
        _money("cost"),
        integer("duration_ms", null=True, ge=0, le=_INT_MAX),
        _metadata(),
        _created(),
    ),
    owner=None,  # logged by the platform, which calls the agent and meters the cost
    admin_read=True,  # a user's prompts and answers: personal data
)

# --- the seed's Redis layer: what is NOT DECLARED YET ---------------------------------
# Issue 15 adds it piece by piece (sessions and presence are below SYSTEM's vector
# collections); docs/systems.md lists them. Key prefixes keep the seed's patterns inside the
# namespace (a prefix may contain ':'):
#   user:session:{session_id}  24 h    user:presence:{user_id}  5 min
#   doc:lock:{document_id}     30 s    doc:ops:{document_id}    1 h (operation log)
#   rate_limit:{user_id}:{endpoint}, rate_limit:window:{user_id}:{endpoint}  1 h
#   api:cache:{endpoint}:{params_hash}  15 min    user:profile:{user_id}  1 h
#   vectors (cosine): research_papers 1536-d, user_profiles 384-d, ai_agents 768-d (on
#   AI_AGENTS above).
# They go in SYSTEM's entities after the tables they refer to.

# The seed's vector collections (Pinecone/Weaviate there): each document carries the
# embedding its client computed, searched by POST /api/<collection>/search (cosine).
RESEARCH_PAPERS = table(
    "research_papers",
    collection="research_papers",
    # The seed's ids are the papers' own ("paper_arxiv_2301.12345"): a client sends them;
    # without one the service numbers it (research_papers_<n>).
    id=IdStrategy.COUNTER,
    fields=(
        text("title", max_length=500, multiline=False),
        json("authors", default=[]),
        string("journal", null=True, max_length=255, index=True),
        integer("year", null=True, ge=0, le=9999, index=True),
        string("doi", null=True, unique=True, case_insensitive=True, index=True, max_length=255),
        text("abstract", null=True),
        json("categories", default=[]),
        vector("embedding", 1536),
    ),
    owner=None,  # a shared corpus, curated by admins
)

USER_PROFILES = table(
    "user_profiles",
    collection="user_profiles",
    id=IdStrategy.COUNTER,  # the seed's "user_<user_id>", or numbered
    fields=(
        # One profile per user.
        replace(
            ref(
                "user_id", "users", on_delete=OnDelete.CASCADE, index=True, relation="user_profiles"
            ),
            unique=Unique("user_id", case_insensitive=False),
        ),
        json("research_interests", default=[]),
        string("institution", null=True, max_length=255, index=True),
        integer("h_index", default=0, ge=0, le=100_000, index=True),
        json("recent_papers", default=[]),
        vector("embedding", 384),
    ),
    owner="user_id",
)


# --- the seed's Redis layer: sessions and presence ---------------------------------------

# user:session:{session_id} (24 h): a live login as the platform's sign-in records it, beside
# the durable user_sessions row. Not this service's bearer tokens: those stay its own (only
# a digest stored, revocable, role-mirrored, rate budgets per user), while a session's id is
# its key, so a session doubling as a credential would put the secret into key names that
# SCAN, backups and MONITOR show. The platform (or the member itself) chooses the id: a PUT
# to /api/sessions/{id} creates or replaces it; POST draws a UUID.
SESSIONS = table(
    "session",
    prefix="user:session",
    collection="sessions",
    id=IdStrategy.UUID,
    fields=(
        # A referrer may expire; only a target may not. A user's deletion ends its sessions.
        ref("user_id", "users", on_delete=_CASCADE, index=True, relation="sessions"),
        timestamp("expires_at", index=True, sortable=True),
        json("permissions", default=[]),  # the seed's ["read", "write"]
        timestamp("last_activity", default=NOW, updated_at=True, index=True, sortable=True),
    ),
    owner="user_id",
    admin_read=True,  # who is signed in from where: personal data
    # 24 h from the sign-in, not from the last write: a session that slid with last_activity
    # would outlive its own expires_at.
    ttl=86400,
    refresh_on_write=False,
    upsert=True,
)

# user:presence:{user_id} (5 min): the seed's value has no user_id, the key carries it, so
# the document's id is its user's id and only that user (or an admin) writes it
# (owner="id"). PUT /api/presence/{user_id} is the heartbeat: it creates or replaces the
# document, stamps last_seen with the server's time and gives it its 5 minutes again;
# a user who stops sending it disappears from ?current_project=...&status=online.
PRESENCE = table(
    "presence",
    prefix="user:presence",
    collection="presence",
    id=IdStrategy.UUID,
    fields=(
        enum("status", ("online", "away", "offline"), index=True),
        timestamp("last_seen", server_time=True, index=True, sortable=True),
        # A presence may refer to a project (nothing may refer to it: it expires); a deleted
        # project leaves its visitors present nowhere.
        ref(
            "current_project",
            "projects",
            null=True,
            on_delete=_SET_NULL,
            index=True,
            relation="presence",
        ),
    ),
    owner="id",
    # Being in a project is not owning it: a member names any project it works in.
    open_refs=("current_project",),
    ttl=300,
    refresh_on_write=True,
    upsert=True,
)


SYSTEM = System(
    name="neuraforge",
    title="NeuraForge",
    # Referenced tables before their referrers: load-demo creates in this order.
    schema=Schema(
        entities=(
            INSTITUTIONS,
            USERS,
            USER_SESSIONS,
            PROJECTS,
            PROJECT_MEMBERS,
            RESEARCH_TREES,
            TREE_NODES,
            NODE_VERSIONS,
            DOCUMENTS,
            DOCUMENT_VERSIONS,
            COLLABORATIONS,
            AI_AGENTS,
            AGENT_DEPLOYMENTS,
            AI_INTERACTIONS,
            RESEARCH_PAPERS,
            USER_PROFILES,
            SESSIONS,
            PRESENCE,
            # The rest of the Redis layer goes here (see above).
        )
    ),
    namespace="neuraforge:",
    principal="users",
    # No global role: project_members.role is a role within a project, not in the service.
    # Every user is a member; admins are the operator's token.
    role_fields=(),
    # What the platform verifies or records: the email with the flag that vouches for it,
    # the ORCID iD (connected through ORCID's sign-in), login times and the account's age.
    admin_only_fields=("email", "email_verified", "orcid_id", "last_login", "created_at"),
    demo="neuraforge",
    # The seed's api:cache:{endpoint}:{params_hash} (15 min): lists and relation lists of the
    # collections its API reads most (keyspace.cache).
    cache=CacheRules(("projects", "documents", "ai_agents", "research_papers")),
    # The seed's rate_limit:{user_id}:{endpoint} with its window's example "limit": 100: each
    # member may call each endpoint 100 times an hour (MULTIFRAME_ENDPOINT_LIMITS changes it).
    rate_limits=EndpointLimits(read=100, write=100, window_seconds=3600),
)
