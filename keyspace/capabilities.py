"""What a server offers: RedisJSON (required) and RediSearch (else lists scan)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import NoPermissionError, ResponseError

from .connection import call
from .errors import NoAccess


@dataclass(frozen=True)
class Capabilities:
    """What the server offers; without ``search`` lists take the slower scan path."""

    json: bool
    search: bool

    @property
    def degraded(self) -> bool:
        return not self.search


async def probe(client: Redis, probe_key: str) -> Capabilities:
    """Detect RedisJSON and RediSearch by trying a harmless command of each; NoAccess when the
    connection's user may not touch the system's keys (an ACL for another system)."""

    async def works(*args: str) -> bool:
        try:
            await call(client, *args)
            return True
        except NoPermissionError:
            raise NoAccess(
                f"this Redis user may not touch {probe_key}: its ACL does not cover the "
                "system's keys; connect as a user whose key patterns do (e.g. the embedded "
                "server's admin user, --redis-url)"
            ) from None
        except ResponseError as exc:
            if str(exc).startswith("BUSY "):
                # A script holds the server: no answer about its modules. Raised, so a start
                # retries and a command says so, rather than "the module is missing".
                raise
            return False

    return Capabilities(json=await works("JSON.TYPE", probe_key), search=await works("FT._LIST"))
