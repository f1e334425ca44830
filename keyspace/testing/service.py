"""The service's ``app`` package as the kit's fixtures import it.

The distribution installs it as the top-level package ``app``, a name many projects give their
own code. Where the importable ``app`` is not this distribution's (a consumer's own package
first on the path), the kit loads the service's under :data:`PRIVATE` instead, so both work in
one process. The service's package imports itself only relatively, which makes that possible.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PRIVATE = "_multiframe_service_app"
"""The module name of the service's package when ``app`` is another project's."""
HOME = Path(__file__).resolve().parents[2] / "app"  # installed (and checked out) beside keyspace


def _is_ours(name: str) -> bool:
    loaded = sys.modules.get(name)
    if loaded is not None:
        origin = getattr(loaded, "__file__", None)
    else:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return False
        origin = spec.origin if spec is not None else None
    return origin is not None and Path(origin).resolve() == HOME / "__init__.py"


def package() -> str:
    """The name the service's package is imported under: ``app`` when that is this
    distribution's (a test may then patch ``app.*`` as usual), else :data:`PRIVATE`."""
    if PRIVATE in sys.modules:
        return PRIVATE
    if _is_ours("app"):
        return "app"
    spec = importlib.util.spec_from_file_location(
        PRIVATE, HOME / "__init__.py", submodule_search_locations=[str(HOME)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"the service's app package is not at {HOME}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[PRIVATE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[PRIVATE]
        raise
    return PRIVATE


def module(name: str) -> ModuleType:
    """The service's ``app.<name>`` (``""``: the package itself)."""
    return importlib.import_module(f"{package()}.{name}" if name else package())
