"""Routes of declared features beside the collections: singletons and settings, document
locks, operation logs and vector search."""

from __future__ import annotations

from keyspace import EntitySpec

from . import singletons
from .locks import Locking, Operations
from .resources import Nearest, Profiled
from .routing import Param, Route, model_name, profile_schema, search_body


def lock_routes(spec: EntitySpec) -> list[Route]:
    """The lock of one document, for an entity declaring ``lock`` (keyspace.locks)."""
    if spec.lock is None:
        return []
    res, path = Locking(spec), f"/api/{spec.collection}/{{id}}/lock"
    token = Param("fencing_token", "release only the lock carrying this fencing token", 1)
    holder = "the holder or an admin"
    return [
        Route(
            "POST",
            path,
            res.acquire,
            f"Lock a {spec.name} for {spec.lock.ttl_seconds} s (a new fencing token)",
            "locks",
            body="LockRequest",
            returns="Lock",
            status=201,
            errors=(404, 409, 415, 422),
            body_required=False,
            notes=((409, "code locked: details name the holder and the seconds left"),),
        ),
        Route(
            "GET",
            path,
            res.get,
            f"The {spec.name}'s lock",
            "locks",
            returns="Lock",
            errors=(403, 404) if spec.admin_read else (404,),
        ),
        Route(
            "POST",
            f"{path}/refresh",
            res.refresh,
            f"Give the lock its whole time again ({holder})",
            "locks",
            body="LockRefresh",
            returns="Lock",
            errors=(403, 404, 409, 415, 422),
            body_required=False,
            notes=((409, "code stale_fencing_token: not the current lock's token"),),
        ),
        Route(
            "DELETE",
            path,
            res.release,
            f"Release the lock ({holder})",
            "locks",
            status=204,
            errors=(400, 403, 404, 409),
            query=(token,),
            notes=((409, "code stale_fencing_token: not the current lock's token"),),
        ),
    ]


def oplog_routes(spec: EntitySpec) -> list[Route]:
    """The operation log of one document, for an entity declaring ``oplog`` (keyspace.oplog)."""
    if spec.oplog is None:
        return []
    res, path = Operations(spec), f"/api/{spec.collection}/{{id}}/ops"
    guarded = " while another user holds the lock" if spec.oplog.lock_guarded else ""
    return [
        Route(
            "POST",
            path,
            res.append,
            "Append operations (one, or a batch atomically); answers their sequence numbers",
            "operations",
            body="OpAppend",
            returns="OpAppended",
            status=201,
            errors=(404, 409, 415, 422),
            notes=(
                (
                    409,
                    f"code locked{guarded}; code stale_fencing_token: not the current lock's token",
                ),
            ),
        ),
        Route(
            "GET",
            path,
            res.read,
            "Operations after a sequence number, in order",
            "operations",
            returns="OpPage",
            errors=(400, 403, 404, 410) if spec.admin_read else (400, 404, 410),
            query=(
                Param("since", "the last sequence number the client has (0: from the start)"),
                Param("limit", "the most operations to return (default 100, at most 1000)", 1),
            ),
            notes=((410, "code gone: details.oldest_seq is the oldest kept"),),
        ),
    ]


def search_routes(spec: EntitySpec) -> list[Route]:
    """``POST /api/<collection>/search`` for an entity with an indexed vector: a read (its
    rate class, and members may search what they may list)."""
    if spec.vector_field is None:
        return []
    return [
        Route(
            "POST",
            f"/api/{spec.collection}/search",
            Nearest(spec).search,
            f"The {spec.collection} nearest a vector (cosine distance)",
            spec.collection,
            body=search_body(spec),
            returns=f"{model_name(spec)}Neighbours",
            rate_class="read",
            errors=(400, 403, 422) if spec.admin_read else (400, 422),
        )
    ]


def profile_routes(spec: EntitySpec) -> list[Route]:
    """``GET /api/<collection>/{id}/profile`` for an entity declaring ``profile``."""
    profile = spec.profile
    if profile is None:
        return []
    return [
        Route(
            "GET",
            f"/api/{spec.collection}/{{id}}/profile",
            Profiled(spec).get,
            f"The {spec.name}'s profile ({', '.join(profile.fields + profile.companion_fields)}),"
            f" cached for {profile.ttl_seconds} s under {profile.key}:{{id}}",
            spec.collection,
            returns=profile_schema(spec),
            errors=(403, 404) if spec.admin_read else (404,),
        )
    ]


def singleton_routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/api/config/system",
            singletons.get_config,
            "Read config:system",
            "config",
            returns="SystemConfig",
            errors=(409,),
        ),
        Route(
            "PUT",
            "/api/config/system",
            singletons.put_config,
            "Replace config:system",
            "config",
            body="SystemConfig",
            returns="SystemConfig",
            conditional=True,
            errors=(400, 409, 412, 415, 422),
        ),
        Route(
            "PATCH",
            "/api/config/system",
            singletons.patch_config,
            "Merge-patch config:system",
            "config",
            body="SystemConfigPatch",
            returns="SystemConfig",
            conditional=True,
            errors=(400, 409, 412, 415, 422),
        ),
        Route(
            "GET",
            "/api/analytics/metrics",
            singletons.get_metrics,
            "Read analytics:metrics",
            "analytics",
            returns="AnalyticsMetrics",
            errors=(409,),
        ),
        Route(
            "PUT",
            "/api/analytics/metrics",
            singletons.put_metrics,
            "Replace analytics:metrics (every chip's entry, last_updated included)",
            "analytics",
            body="AnalyticsMetrics",
            returns="AnalyticsMetrics",
            conditional=True,
            errors=(400, 409, 412, 415, 422),
        ),
        Route(
            "GET",
            "/api/analytics/metrics/{chip_id}",
            singletons.get_chip,
            "One chip's metrics",
            "analytics",
            returns="ChipMetrics",
            errors=(404, 409, 422),
        ),
        Route(
            "PUT",
            "/api/analytics/metrics/{chip_id}",
            singletons.put_chip,
            "Write one chip's metrics (last_updated set by the server)",
            "analytics",
            body="ChipMetricsInput",
            returns="ChipMetrics",
            errors=(400, 409, 415, 422),
        ),
    ]


def settings_routes() -> list[Route]:
    """The operating settings of a system without MultiFrame's config:system."""
    return [
        Route(
            "GET",
            "/api/settings",
            singletons.get_settings,
            "Read the operating settings (maintenance, mode)",
            "settings",
            returns="OperatingSettings",
            errors=(409,),
        ),
        Route(
            "PUT",
            "/api/settings",
            singletons.put_settings,
            "Replace the operating settings",
            "settings",
            body="OperatingSettings",
            returns="OperatingSettings",
            conditional=True,
            errors=(400, 409, 412, 415, 422),
        ),
        Route(
            "PATCH",
            "/api/settings",
            singletons.patch_settings,
            "Merge-patch the operating settings (system.maintenance, system.mode)",
            "settings",
            body="OperatingSettingsPatch",
            returns="OperatingSettings",
            conditional=True,
            errors=(400, 409, 412, 415, 422),
        ),
    ]
