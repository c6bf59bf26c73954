"""`vigil agent`: run the endpoint agent, check what this host offers it, print its configuration.

    vigil agent run --config /etc/vigil/agent.toml [--set section.key=value ...]   (SIGHUP reloads)
    vigil agent doctor [--config FILE] [--json]
    vigil agent config --default | --show [--config FILE]
    vigil agent enroll --manager URL --uuid UUID --key KEY [--fingerprint SHA256] [--config FILE]

Without ``--config``, ``/etc/vigil/agent.toml`` is read when it exists. ``--set`` overrides any key
(see docs/agent-config.md) after the file and the ``VIGIL_AGENT_*`` environment.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from vigil.cli import COMMANDS

DEFAULT_CONFIG = "/etc/vigil/agent.toml"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("agent", help=COMMANDS["agent"])
    sub = parser.add_subparsers(dest="agent_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args: _usage(parser))

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-c", "--config", help=f"TOML config file (default: {DEFAULT_CONFIG} if it exists)")
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key, e.g. --set log_all=true (repeatable)",
        )

    run = sub.add_parser("run", help="run the agent in the foreground until SIGTERM/SIGINT")
    common(run)
    run.set_defaults(handler=_run)

    doctor = sub.add_parser("doctor", help="each source, action and output: available or not, and why")
    common(doctor)
    doctor.add_argument("--json", action="store_true", help="one JSON object per finding")
    doctor.set_defaults(handler=_doctor)

    config = sub.add_parser("config", help="print the default or the effective configuration as TOML")
    common(config)
    what = config.add_mutually_exclusive_group(required=True)
    what.add_argument("--default", action="store_true", help="the defaults, with help text")
    what.add_argument("--show", action="store_true", help="the merged file, environment and --set values")
    config.set_defaults(handler=_config)

    enroll = sub.add_parser("enroll", help="write the manager's address and this endpoint's credentials")
    enroll.add_argument(
        "-c", "--config", default=DEFAULT_CONFIG, help=f"file to write (default: {DEFAULT_CONFIG})"
    )
    enroll.add_argument(
        "--manager", required=True, metavar="URL", help="endpoint API, e.g. https://manager:1519"
    )
    enroll.add_argument("--uuid", required=True, help="this endpoint's UUID (from the manager)")
    enroll.add_argument("--key", required=True, help="this endpoint's key (from the manager)")
    enroll.add_argument("--fingerprint", default="", help="SHA-256 of the manager's certificate to pin")
    enroll.set_defaults(handler=_enroll)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _config_path(args: argparse.Namespace) -> str | None:
    if args.config is None and os.path.exists(DEFAULT_CONFIG):
        return DEFAULT_CONFIG
    return str(args.config) if args.config is not None else None


def _load(args: argparse.Namespace) -> Any:
    """(config, registry), or print the config error and return None."""
    from vigil.agent.config import ConfigError
    from vigil.agent.config_loader import exposed_secrets, load_config
    from vigil.agent.registry import default_registry

    path = _config_path(args)
    registry = default_registry()
    try:
        config = load_config(path, overrides=args.overrides, known_actions=registry.names("action"))
    except ConfigError as e:
        print(f"vigil agent: invalid configuration: {e}", file=sys.stderr)
        return None
    leak = exposed_secrets(path, config)
    if leak:
        logging.getLogger("vigil.agent").warning("%s", leak)
    return config, registry


def _run(args: argparse.Namespace) -> int:
    from vigil.agent.daemon import Agent, configure_logging

    loaded = _load(args)
    if loaded is None:
        return 2
    config, registry = loaded
    verbose = getattr(args, "verbose", 0)
    configure_logging(config, level=logging.DEBUG if verbose >= 2 else None)
    path = _config_path(args)

    def reload() -> Any:
        from vigil.agent.config_loader import load_config

        return load_config(path, overrides=args.overrides, known_actions=registry.names("action"))

    agent = Agent(config, registry=registry, reload=reload)
    if not config.standalone:
        from vigil.agent.link.service import ManagerService

        agent.services.append(ManagerService(agent))
    return agent.run()


def _doctor(args: argparse.Namespace) -> int:
    from vigil.agent.doctor import diagnose, exit_status, render

    loaded = _load(args)
    if loaded is None:
        return 2
    config, registry = loaded
    findings = diagnose(config, registry, config_path=_config_path(args))
    if args.json:
        for f in findings:
            print(json.dumps(f.as_dict()))
    else:
        sys.stdout.write(render(findings))
    return exit_status(findings)


def _config(args: argparse.Namespace) -> int:
    from vigil.agent.config_docs import render_default_toml, render_toml

    if args.default:
        sys.stdout.write(render_default_toml())
        return 0
    loaded = _load(args)
    if loaded is None:
        return 2
    sys.stdout.write(render_toml(loaded[0]))
    return 0


def _enroll(args: argparse.Namespace) -> int:
    from vigil.agent.enroll import EnrollError, enroll

    try:
        path = enroll(
            args.config, url=args.manager, uuid=args.uuid, key=args.key, fingerprint=args.fingerprint
        )
    except EnrollError as e:
        print(f"vigil agent enroll: {e}", file=sys.stderr)
        return 2
    print(f"enrolled: {path} now points the agent at {args.manager} (restart the agent to apply)")
    return 0
