"""``multiframe-admin ha up|down|status|restart``: a local primary, replica and three sentinels
for development (keyspace.ha; docs/scaling.md, "Replicas and Sentinel")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keyspace import ha

from .exits import PROBLEMS, USAGE

DEFAULT_DIR = Path("var/ha")
DEFAULT_PORT_BASE = 6390


HELP = "a local primary, replica and three sentinels for development (up, down, status, restart)"


def add_args(top: argparse.ArgumentParser) -> None:
    """The verbs of ``ha`` and their options."""
    verbs = top.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, help_text in (
        ("up", "start the primary, the replica and three sentinels; print the REDIS_URL"),
        ("down", "stop every process `ha up` recorded in --dir (its data stays)"),
        ("status", "each process's role, or down"),
        (
            "restart",
            "start a data node that went down again, as a replica of the current primary",
        ),
    ):
        cmd = verbs.add_parser(verb, help=help_text, description=help_text)
        cmd.add_argument(
            "--dir",
            type=Path,
            default=DEFAULT_DIR,
            help=f"the cluster's directory, one subdirectory per process (default {DEFAULT_DIR})",
        )
        if verb == "restart":
            cmd.add_argument("node", choices=ha.NODES, help="the data node to start again")
        if verb == "up":
            cmd.add_argument(
                "--port-base",
                type=int,
                default=DEFAULT_PORT_BASE,
                help="the primary's port; the replica and the sentinels take the next four "
                f"(default {DEFAULT_PORT_BASE})",
            )
    top.set_defaults(direct=run)


def run(args: argparse.Namespace) -> int:
    """Carry out one ``ha`` verb; 0 done, 1 failed, 2 bad usage."""
    try:
        if args.verb == "up":
            try:
                ports = ha.Ports.from_base(args.port_base)
            except ValueError as exc:
                print(f"error: --port-base: {exc}", file=sys.stderr)
                return USAGE
            cluster = ha.up(args.dir, ports, schema=args.system.schema)
            nodes, sentinels = cluster.ports.nodes, cluster.ports.sentinels
            print(
                f"HA cluster up in {cluster.directory}: primary 127.0.0.1:{nodes[0]}, replica "
                f"127.0.0.1:{nodes[1]}, sentinels on {', '.join(map(str, sentinels))}"
            )
            print("# the service (python -m app):")
            print(f"REDIS_URL={cluster.url()}")
            print("# operations (multiframe-admin --redis-url ...):")
            print(f"MULTIFRAME_ADMIN_REDIS_URL={cluster.url(admin=True)}")
            return 0
        if args.verb == "down":
            stopped = ha.down(args.dir)
            print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
            return 0
        cluster = ha.Cluster.load(args.dir)
        if args.verb == "restart":
            pid = ha.restart(cluster, args.node, schema=args.system.schema)
            print(f"{args.node} started again (pid {pid}), in sync with the primary")
            return 0
        for name, state in ha.status(cluster).items():
            print(f"{name}: {state}")
        return 0
    except ha.HaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return PROBLEMS
