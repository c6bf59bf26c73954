"""Defense evasion, discovery and impact shapes that touch only sandbox files (or nothing)."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from vigil.simulate.registry import scenario
from vigil.simulate.sandbox import SIM_PREFIX, Sandbox, resolve_program
from vigil.simulate.scenarios._util import have


@scenario(
    "defense-evasion",
    "unset HISTFILE in a throw-away shell, truncate -c and rm -f of a /var/log file that does not "
    "exist, shred -u of a sandbox file, touch -r on a sandbox file, a hidden file in /tmp, and "
    "/bin/true started under the name [kworker/...].",
    [
        "HistoryTampering",
        "LogFileTampering",
        "SecureFileDeletion",
        "TimestompWithTouch",
        "HiddenFileInTempDir",
        "KernelThreadMasquerade",
    ],
)
def defense_evasion(sb: Sandbox) -> None:
    sb.run(["sh", "-c", "unset HISTFILE; true"])
    log = sb.register(Path("/var/log") / f"{SIM_PREFIX}{secrets.token_hex(6)}.log")
    if log.exists():  # pragma: no cover - a random name that exists is not ours to touch
        sb.skip_rules(["LogFileTampering"], f"{log} exists")
    else:
        sb.run(["truncate", "-c", "-s", "0", str(log)])  # -c: never creates the file
        sb.run(["rm", "-f", str(log)])
    evidence = sb.write_file(sb.path("evidence.txt"), "vigil-sim\n")
    sb.run(["shred", "-u", str(evidence)])
    planted = sb.write_file(sb.path("planted"), "")
    sb.run(["touch", "-r", "/bin/sh", str(planted)])
    fd, hidden = tempfile.mkstemp(prefix="." + SIM_PREFIX, dir="/tmp")
    os.close(fd)
    sb.register(Path(hidden))
    sb.expect_file(Path(hidden))
    sb.run(["[kworker/0:0-vigil-sim]"], executable=resolve_program("true"))


@scenario(
    "discovery",
    "A recon burst: whoami, id, uname -a, hostname, ip addr, cat /etc/passwd, the same chained in one "
    "shell command line, and a setuid search limited to the sandbox.",
    [
        "ReconUserIdentity",
        "ReconSystemInfo",
        "ReconNetworkConfig",
        "ReconAccountFiles",
        "ReconBurstChained",
        "SuidBinarySearch",
    ],
)
def discovery(sb: Sandbox) -> None:
    for argv in (["whoami"], ["id"], ["uname", "-a"], ["hostname"], ["cat", "/etc/passwd"]):
        sb.run(argv)
    if have("ip"):
        sb.run(["ip", "addr"])
    else:
        sb.skip_rules(["ReconNetworkConfig"], "ip is not installed")
    sb.run(
        ["sh", "-c", "whoami; id; uname -a"],
        children=[("whoami", "whoami"), ("id", "id"), ("uname", "uname -a")],
    )
    sb.run(["find", str(sb.root), "-perm", "-4000"])


@scenario(
    "impact",
    "A find -exec openssl enc over the sandbox that matches no file, so nothing is encrypted.",
    ["MassFileEncryption"],
)
def impact(sb: Sandbox) -> None:
    sb.run(
        [
            "find",
            str(sb.root),
            "-name",
            "vigil-sim-no-such-file",
            "-exec",
            "openssl",
            "enc",
            "-aes-256-cbc",
            "-pbkdf2",
            "-pass",
            "pass:vigil-sim",
            "-in",
            "{}",
            "-out",
            "{}.enc",
            ";",
        ]
    )
