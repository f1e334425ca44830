"""What fakeredis's Lua lacks and the keyspace's scripts call: ``redis.sha1hex``, with which
commit.lua names a document's revision in the change feed (keyspace.changes).

:func:`give_sha1hex` patches fakeredis once per process; the kit's fakeredis client calls it,
and a test suite that builds fakeredis clients itself calls it before its first script."""

from __future__ import annotations

import hashlib
from typing import Any

_patched = False


def _sha1hex(raw: Any) -> bytes:
    data = raw if isinstance(raw, bytes) else str(raw).encode()
    return hashlib.sha1(data, usedforsecurity=False).hexdigest().encode()


def give_sha1hex() -> None:
    """Have every fakeredis server's Lua runtime offer ``redis.sha1hex`` as Redis does."""
    global _patched
    if _patched:
        return
    from fakeredis.commands_mixins.scripting_mixin import ScriptingCommandsMixin

    original = ScriptingCommandsMixin._get_server_runtime

    def runtime(self: Any, server: Any) -> Any:
        lua = original(self, server)
        table = lua.globals().redis
        if table.sha1hex is None:  # the redis table is made with the runtime, once a server
            table.sha1hex = _sha1hex
        return lua

    ScriptingCommandsMixin._get_server_runtime = runtime  # type: ignore[method-assign]
    _patched = True
