"""`vigil up`: manager and a local agent on embedded SQLite, with the default rules (what `make run` runs)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from vigil.cli import COMMANDS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("up", help=COMMANDS["up"])
    parser.add_argument(
        "--data", type=Path, default=Path("var/vigil"), help="data directory (default: var/vigil)"
    )
    parser.add_argument(
        "--admin-port", type=int, default=1520, help="admin API and console port (default 1520)"
    )
    parser.add_argument("--endpoint-port", type=int, default=1519, help="endpoint API port (default 1519)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address of both APIs (default 127.0.0.1)")
    parser.add_argument("--no-agent", action="store_true", help="run only the manager")
    parser.set_defaults(handler=_up)


def _up(args: argparse.Namespace) -> int:
    from vigil.manager.errors import ManagerError
    from vigil.up import LocalDeployment, UpError

    deployment = LocalDeployment(
        args.data,
        admin_port=args.admin_port,
        endpoint_port=args.endpoint_port,
        host=args.host,
        agent=not args.no_agent,
    )
    first_run = not deployment.initialized()
    try:
        deployment.check_ports()  # before anything is created: a busy port leaves no half-made setup
        init = deployment.initialize()
    except UpError as exc:
        print(f"vigil up: {exc}", file=sys.stderr)
        return 1
    except (ManagerError, OSError) as exc:
        print(f"vigil up: cannot initialise {args.data}: {exc}", file=sys.stderr)
        if first_run:
            deployment.forget_first_run()
        return 1
    signal.signal(signal.SIGINT, deployment.request_stop)
    signal.signal(signal.SIGTERM, deployment.request_stop)
    signal.signal(signal.SIGHUP, deployment.request_stop)  # the terminal went away
    up = False
    try:
        deployment.start_manager()
        if first_run and init.admin_key:
            count = deployment.load_default_rules(init.admin_key)
            print(f"vigil up: loaded {count} default rules into the manager")
        if deployment.with_agent:
            deployment.start_agent()
        deployment.write_state(init.fingerprint)
        _banner(deployment, init.admin_key, init.fingerprint)
        up = True
        return deployment.wait()
    except UpError as exc:
        print(f"vigil up: {exc}", file=sys.stderr)
        return 1
    finally:
        if deployment.children:
            print("vigil up: stopping the agent, then the manager", file=sys.stderr, flush=True)
        deployment.stop()
        if first_run and not up:
            deployment.forget_first_run()
            print(
                f"vigil up: the first run did not complete; removed its half-made setup from {deployment.data_dir}"
                " (run vigil up again)",
                file=sys.stderr,
            )
        elif up:
            print("vigil up: stopped", file=sys.stderr)


def _vigil_cli() -> str:
    """How to type ``vigil`` from here: after ``make run`` it is ``.venv/bin/vigil``, not on PATH."""
    import shutil
    from pathlib import Path

    script = Path(sys.executable).parent / "vigil"
    if not script.exists() or shutil.which("vigil") == str(script):
        return "vigil"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _banner(deployment: Any, admin_key: str | None, fingerprint: str) -> None:
    vigil = _vigil_cli()
    lines = [
        "",
        "vigil is up.",
        f"  console:       {deployment.admin_url}/ui/   (self-signed certificate, see the fingerprint below)",
        f"  admin API:     {deployment.admin_url}   (OpenAPI docs at /docs)",
        f"  endpoint API:  {deployment.endpoint_url}",
        f"  certificate public-key fingerprint (sha256): {fingerprint}",
    ]
    if admin_key:
        lines.append(f"  admin key (shown once, keep it): {admin_key}")
    else:
        lines.append(
            f"  admin key: shown at the first run; new one: {vigil} manager user add NAME --data {deployment.manager_dir}"
        )
    if deployment.with_agent:
        if os.geteuid() == 0:
            lines.append(
                f"  local agent: running as root with the kernel sensors (see `{vigil} agent doctor`)"
            )
        else:
            lines.append(
                "  local agent: NOT root: it cannot use the audit, cn_proc, fanotify or packet sockets and falls"
                " back to polling /proc (no network, DNS, file or module events, no exec blocking). Run as root"
                f" for full visibility; `{vigil} agent doctor` lists what is missing."
            )
        lines.append(
            f"  try it:        {vigil} simulate   (harmless activities that trigger the default rules)"
        )
    lines.append("  stop:          Ctrl-C")
    print("\n".join(lines), flush=True)
