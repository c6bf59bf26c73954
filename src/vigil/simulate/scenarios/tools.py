"""Attacker tools by name: sandbox copies of /bin/true named like them, run with their usual options."""

from __future__ import annotations

from vigil.simulate.registry import scenario
from vigil.simulate.sandbox import Sandbox

#: (file name, arguments) of each fake tool; "{port}" is a closed loopback port, "{root}" the sandbox.
FAKE_TOOLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("xmrig", ("-o", "stratum+tcp://127.0.0.1:{port}", "--donate-level", "1")),
    ("hydra", ("-l", "root", "-p", "vigil-sim", "ssh://127.0.0.1:{port}")),
    ("nmap", ("-sT", "-p", "{port}", "127.0.0.1")),
    ("linpeas.sh", ("-a",)),
    ("chisel", ("client", "127.0.0.1:{port}", "R:socks")),
    ("iodine", ("-f", "vigil-sim.invalid")),
    ("deepce.sh", ()),
    ("mimipenguin.sh", ()),
    ("diamorphine", ()),
    ("nc", ("-e", "/bin/sh", "127.0.0.1", "{port}")),
    ("socat", ("TCP:127.0.0.1:{port}", "EXEC:/bin/true")),
    ("insmod", ("{root}/vigil-sim.ko",)),
    ("pkexec", ()),
    ("useradd", ("-o", "-u", "0", "vigil-sim")),
    ("usermod", ("-aG", "sudo", "vigil-sim")),
    ("auditctl", ("-D",)),
    ("docker", ("run", "--rm", "--privileged", "-v", "/:/host", "alpine")),
)


@scenario(
    "attacker-tools",
    "Copies of /bin/true named like attacker tools (xmrig, hydra, nmap, linpeas.sh, chisel, iodine, "
    "deepce.sh, mimipenguin.sh, diamorphine, nc, socat, insmod, pkexec, useradd, usermod, auditctl, "
    "docker) run from the sandbox with their typical options. They do nothing.",
    [
        "CryptoMinerBinary",
        "CryptoMinerCommandLine",
        "PasswordAttackTool",
        "PortScanner",
        "PrivescEnumerationScript",
        "TunnelingTool",
        "DnsTunnelingTool",
        "ContainerEscapeTool",
        "CredentialDumpTool",
        "KnownRootkitName",
        "NetcatShellExec",
        "SocatShellExec",
        "KernelModuleFromFile",
        "PkexecWithoutArguments",
        "LocalAccountCreated",
        "UidZeroAccount",
        "UserAddedToPrivilegedGroup",
        "AuditTampering",
        "PrivilegedContainerLaunch",
    ],
)
def attacker_tools(sb: Sandbox) -> None:
    port = str(sb.closed_port())
    for name, args in FAKE_TOOLS:
        tool = sb.copy_program("true", name)
        sb.run([str(tool), *(a.format(port=port, root=sb.root) for a in args)])
