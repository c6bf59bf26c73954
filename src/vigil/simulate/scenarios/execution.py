"""Reverse shells, download-and-execute, and services spawning shells."""

from __future__ import annotations

import tempfile
from pathlib import Path

from vigil.simulate.registry import scenario
from vigil.simulate.sandbox import SIM_PREFIX, Sandbox, resolve_program
from vigil.simulate.scenarios._util import have, python, q

SHM = Path("/dev/shm")  # noqa: S108 - the directory the ExecFromDevShm rule watches


@scenario(
    "reverse-shell",
    "Reverse-shell command lines aimed at a closed loopback port (bash /dev/tcp, a Python socket "
    "one-liner, a named-pipe shell, an openssl s_client pipe). Every connection is refused.",
    ["ReverseShellDevTcp", "ScriptInterpreterSocketShell", "NamedPipeShell", "OpenSslReverseShell"],
)
def reverse_shell(sb: Sandbox) -> None:
    port = sb.closed_port()
    sb.run(["bash", "-c", f"true >& /dev/tcp/127.0.0.1/{port} 0>&1"])
    code = (
        "import socket,subprocess;s=socket.socket();s.settimeout(1);"
        f"s.connect_ex(('127.0.0.1',{port}));s.close();subprocess.run(['true'])"
    )
    sb.run([python(), "-c", code], children=[("true", "true")])
    fifo = sb.path("f")
    # The pipe's reader and writer pair up, nc fails at once (or is missing), and every stage
    # sees end-of-file: nothing waits and nothing connects.
    sb.run(
        [
            "sh",
            "-c",
            f"mkfifo {q(fifo)} && cat {q(fifo)} | cat | nc 127.0.0.1 {port} > {q(fifo)}; rm -f {q(fifo)}",
        ]
    )
    # The receiving end of every pipe below is "sh -c true", which never reads what it is sent.
    sb.run(
        [
            "sh",
            "-c",
            f"openssl s_client -quiet -connect 127.0.0.1:{port} < /dev/null 2>/dev/null | sh -c true",
        ]
    )


@scenario(
    "download-exec",
    "Download-and-execute shapes: curl | sh -c true and a download into /tmp from a closed loopback port, a copy "
    "of /bin/true made executable and run from /tmp, as a hidden file and from /dev/shm, a base64|sh "
    "pipeline that runs 'true', a temp copy of bash connecting to a closed loopback port, and "
    "/bin/true executed from a memfd.",
    [
        "DownloadPipedToShell",
        "DownloadToTempDir",
        "ChmodExecInTemp",
        "ExecFromTmp",
        "HiddenExecutable",
        "ExecFromDevShm",
        "Base64DecodeToShell",
        "NetworkFromTempBinary",
        "FilelessExecution",
    ],
)
def download_exec(sb: Sandbox) -> None:
    port = sb.closed_port()
    url = f"http://127.0.0.1:{port}/vigil-sim"
    payload = sb.path("payload")
    if have("curl"):
        sb.run(["sh", "-c", f"curl -s -m 2 {url} | sh -c true"])
        sb.run(["curl", "-s", "-m", "2", "-o", str(payload), url])
    elif have("wget"):
        sb.run(["sh", "-c", f"wget -q -T 2 -O - {url} | sh -c true"])
        sb.run(["wget", "-q", "-T", "2", "-O", str(payload), url])
    else:
        sb.skip_rules(["DownloadPipedToShell", "DownloadToTempDir"], "neither curl nor wget is installed")

    binary = sb.copy_program("true", "payload-bin")
    binary.chmod(0o644)
    sb.run(["chmod", "+x", str(binary)])
    sb.run([str(binary)])
    hidden = sb.copy_program("true", ".hidden-payload")
    sb.run([str(hidden)])

    shm = SHM
    if shm.is_dir():
        directory = sb.register(Path(tempfile.mkdtemp(prefix=SIM_PREFIX, dir=shm)))
        shm_binary = sb.copy_program("true", "payload", directory)
        try:
            sb.run([str(shm_binary)])
        except PermissionError:
            sb.skip_rules(["ExecFromDevShm"], f"{SHM} is mounted noexec")
    else:
        sb.skip_rules(["ExecFromDevShm"], f"{SHM} does not exist")

    sb.run(["sh", "-c", "echo dHJ1ZQo= | base64 -d | sh"], children=[("sh", "sh")])

    bash_copy = sb.copy_program("bash", "netcheck")
    sb.run([str(bash_copy), "-c", f"true > /dev/tcp/127.0.0.1/{port}"])
    sb.expect_connect(str(bash_copy), "127.0.0.1", port)

    true_path = resolve_program("true")
    code = (
        "import os;fd=os.memfd_create('vigil-sim');"
        f"os.write(fd,open({true_path!r},'rb').read());os.execv(f'/proc/self/fd/{{fd}}',['vigil-sim'])"
    )
    sb.run([python(), "-c", code])
    sb.expect_process("/memfd:vigil-sim (deleted)", "vigil-sim")


@scenario(
    "service-shell",
    "Copies of sh named nginx, postgres and java start child shells (and nginx runs 'id'), as a web "
    "shell or an exploited database or Java application would.",
    ["WebServerSpawnsShell", "ServiceSpawnsRecon", "DatabaseSpawnsShell", "JavaSpawnsShellWithTool"],
)
def service_shell(sb: Sandbox) -> None:
    # Each "service" spawns its shell at once: the sensor builds a child's ProcessCreate after its
    # parent's exec even when the two are a millisecond apart (docs/agent-events.md).
    nginx = sb.copy_program("sh", "nginx")
    sb.run(
        [str(nginx), "-c", "/bin/sh -c true; id >/dev/null; true"],
        children=[("/bin/sh", "/bin/sh -c true"), ("id", "id")],
    )
    postgres = sb.copy_program("sh", "postgres")
    sb.run([str(postgres), "-c", "/bin/sh -c true; true"], children=[("/bin/sh", "/bin/sh -c true")])
    java = sb.copy_program("sh", "java")
    port = sb.closed_port()
    inner = f"curl -s -m 1 http://127.0.0.1:{port}/ >/dev/null 2>&1"
    sb.run([str(java), "-c", f"/bin/sh -c '{inner}'; true"], children=[("/bin/sh", f"/bin/sh -c {inner}")])
