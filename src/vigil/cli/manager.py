"""`vigil manager`: initialize, run and administer the fleet manager."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vigil.cli import COMMANDS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("manager", help=COMMANDS["manager"])
    sub = parser.add_subparsers(dest="manager_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args: (parser.print_help(sys.stderr), 2)[1])

    init = sub.add_parser("init", help="create config, TLS certificate, database and the first admin user")
    init.add_argument("--data", required=True, type=Path, help="data directory")
    init.add_argument("--hostname", action="append", default=[], help="extra certificate name (repeatable)")
    init.add_argument("--no-tls", action="store_true", help="configure plain HTTP (no certificate)")
    init.add_argument("--admin", default="admin", help="identifier of the first admin user")
    init.set_defaults(handler=_init)

    run = sub.add_parser("run", help="serve the endpoint and admin APIs")
    run.add_argument("--data", required=True, type=Path, help="data directory")
    run.add_argument("--admin-port", type=int, help="admin API port (default 1520)")
    run.add_argument("--endpoint-port", type=int, help="endpoint API port (default 1519)")
    run.add_argument("--host", help="listen address of both APIs")
    run.set_defaults(handler=_run)

    user = sub.add_parser("user", help="admin users")
    user_sub = user.add_subparsers(dest="user_command", metavar="ACTION")
    user_add = user_sub.add_parser("add", help="create an admin user and print its key")
    user_add.add_argument("name")
    user_add.add_argument("--data", required=True, type=Path, help="data directory")
    user_add.set_defaults(handler=_user_add)
    user.set_defaults(handler=lambda args: (user.print_help(sys.stderr), 2)[1])

    endpoint = sub.add_parser("endpoint", help="endpoints")
    endpoint_sub = endpoint.add_subparsers(dest="endpoint_command", metavar="ACTION")
    endpoint_add = endpoint_sub.add_parser("add", help="enroll an endpoint and print its uuid and key")
    endpoint_add.add_argument("--data", required=True, type=Path, help="data directory")
    endpoint_add.set_defaults(handler=_endpoint_add)
    endpoint.set_defaults(handler=lambda args: (endpoint.print_help(sys.stderr), 2)[1])

    rules = sub.add_parser("rules", help="Gene and Sigma rules of the manager's database")
    rules_sub = rules.add_subparsers(dest="rules_command", metavar="ACTION")
    rules_import = rules_sub.add_parser(
        "import",
        help="validate and store the Gene (.gen/.gene) and Sigma (.yml/.yaml) rules of files or "
        "directories (all or nothing; run with the manager stopped, or use the admin API)",
    )
    rules_import.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    rules_import.add_argument("--data", required=True, type=Path, help="data directory")
    rules_import.add_argument("--update", action="store_true", help="replace rules already stored")
    rules_import.add_argument(
        "--skip-unsupported",
        action="store_true",
        help="leave out (and list) Sigma rules whose log source or construct vigil cannot run",
    )
    rules_import.set_defaults(handler=_rules_import)
    rules_list = rules_sub.add_parser("list", help="list the stored Gene and Sigma rules")
    rules_list.add_argument("--data", required=True, type=Path, help="data directory")
    rules_list.set_defaults(handler=_rules_list)
    rules.set_defaults(handler=lambda args: (rules.print_help(sys.stderr), 2)[1])

    openapi = sub.add_parser("openapi", help="print the OpenAPI document")
    openapi.add_argument("--api", choices=("admin", "endpoint"), default="admin")
    openapi.add_argument("--markdown", action="store_true", help="print the Markdown reference of both APIs")
    openapi.set_defaults(handler=_openapi)

    fingerprint = sub.add_parser("fingerprint", help="print the pinning fingerprint of a certificate")
    fingerprint.add_argument("cert", type=Path)
    fingerprint.set_defaults(handler=_fingerprint)


def _load(data: Path) -> Any:
    from vigil.manager.config import ManagerConfig
    from vigil.manager.errors import ManagerError

    if not (data / "manager.toml").is_file():
        print(
            f"vigil manager: {data} is not initialized (run `vigil manager init --data {data}`)",
            file=sys.stderr,
        )
        return None
    try:
        return ManagerConfig.load(data)
    except ManagerError as exc:
        print(f"vigil manager: {exc.message}", file=sys.stderr)
        return None


@contextlib.contextmanager
def _opened(data: Path) -> Iterator[Any]:
    """The manager of ``data`` for one command, closed afterwards; None when its config does not
    load (``_load`` has printed why)."""
    from vigil.manager.state import Manager

    config = _load(data)
    if config is None:
        yield None
        return
    manager = Manager.open(config)
    try:
        yield manager
    finally:
        manager.close()


def _init(args: argparse.Namespace) -> int:
    from vigil.manager.api.admin import create_user
    from vigil.manager.config import CONFIG_FILE, ManagerConfig
    from vigil.manager.state import Manager
    from vigil.manager.tls import generate_self_signed, public_key_fingerprint

    data: Path = args.data
    if (data / CONFIG_FILE).exists():
        print(f"vigil manager: {data} is already initialized", file=sys.stderr)
        return 1
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)
    config = ManagerConfig(data_dir=data, tls=not args.no_tls)
    (data / CONFIG_FILE).write_text(config.to_toml())
    if config.tls:
        config.cert_path.parent.mkdir(parents=True, exist_ok=True)
        fp = generate_self_signed(config.cert_path, config.key_path, ("localhost", *args.hostname))
        print(f"certificate: {config.cert_path}")
        print(f"fingerprint (sha256 of the DER certificate): {fp}")
        pk = public_key_fingerprint(config.cert_path.read_bytes())
        print(f"public-key fingerprint (WHIDS server-fingerprint): {pk}")
    manager = Manager.open(config)
    try:
        user = create_user(manager, args.admin)
    finally:
        manager.close()
    print(f"admin user: {user['identifier']} ({user['uuid']})")
    print(f"admin key (shown once): {user['key']}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from vigil.manager.errors import ManagerError
    from vigil.manager.server import ManagerServer

    config = _load(args.data)
    if config is None:
        return 1
    config = config.replace(
        admin_port=args.admin_port,
        endpoint_port=args.endpoint_port,
        admin_host=args.host,
        endpoint_host=args.host,
    )
    try:
        server = ManagerServer(config)
        server.run(
            lambda: print(f"ready endpoint={server.endpoint_port} admin={server.admin_port}", flush=True)
        )
    except ManagerError as exc:
        print(f"vigil manager: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _user_add(args: argparse.Namespace) -> int:
    from vigil.manager.api.admin import create_user
    from vigil.manager.errors import ManagerError

    with _opened(args.data) as manager:
        if manager is None:
            return 1
        try:
            user = create_user(manager, args.name)
        except ManagerError as exc:
            print(f"vigil manager: {exc.message}", file=sys.stderr)
            return 1
    print(json.dumps(user, indent=2))
    return 0


def _endpoint_add(args: argparse.Namespace) -> int:
    from vigil.manager.api.admin import create_endpoint

    with _opened(args.data) as manager:
        if manager is None:
            return 1
        endpoint = create_endpoint(manager)
    print(json.dumps({"uuid": endpoint["uuid"], "key": endpoint["key"]}, indent=2))
    return 0


def _rules_import(args: argparse.Namespace) -> int:
    from vigil.manager.rule_import import import_rules

    missing = [p for p in args.paths if not p.exists()]
    if missing:
        print(f"vigil manager: no such file or directory: {', '.join(map(str, missing))}", file=sys.stderr)
        return 1
    with _opened(args.data) as manager:
        if manager is None:
            return 1
        result = import_rules(manager, args.paths, update=args.update, skip_unsupported=args.skip_unsupported)
    for skipped in result.skipped:
        print(f"skipped: {skipped}", file=sys.stderr)
    for error in result.errors:
        print(error)
    if result.errors:
        print(f"{len(result.errors)} error(s); nothing was stored", file=sys.stderr)
        return 1
    skipped = f", skipped {len(result.skipped)} unsupported Sigma rule(s)" if result.skipped else ""
    print(f"stored {result.gene} Gene rule(s) and {result.sigma} Sigma rule(s){skipped}")
    return 0


def _rules_list(args: argparse.Namespace) -> int:
    with _opened(args.data) as manager:
        if manager is None:
            return 1
        for name in sorted(manager.rules.rules):
            info = manager.rules.info.get(name)
            print(f"gene\t{name}\t{info.criticality if info else 0}")
        for rule_id, entry in sorted(manager.rules.sigma.entries.items()):
            print(f"sigma-{entry.kind}\t{entry.title}\t{entry.criticality}\t{rule_id}")
    return 0


def openapi_document(api: str = "admin") -> dict[str, Any]:
    from vigil.manager.app import create_admin_app, create_endpoint_app
    from vigil.manager.config import ManagerConfig
    from vigil.manager.state import Manager

    with tempfile.TemporaryDirectory() as tmp:
        manager = Manager.open(ManagerConfig(data_dir=Path(tmp)))
        try:
            app = create_admin_app(manager) if api == "admin" else create_endpoint_app(manager)
            return app.openapi()
        finally:
            manager.close()


def _openapi(args: argparse.Namespace) -> int:
    if args.markdown:
        from vigil.manager.apidoc import render_markdown

        print(render_markdown(openapi_document("admin"), openapi_document("endpoint")), end="")
        return 0
    print(json.dumps(openapi_document(args.api), indent=2))
    return 0


def _fingerprint(args: argparse.Namespace) -> int:
    from vigil.manager.tls import certificate_fingerprint

    try:
        print(certificate_fingerprint(args.cert.read_bytes()))
    except (OSError, ValueError) as exc:
        print(f"vigil manager: {args.cert}: {exc}", file=sys.stderr)
        return 1
    return 0
