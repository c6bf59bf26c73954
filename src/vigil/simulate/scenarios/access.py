"""Credential access, persistence, privilege escalation and container escape, all on sandbox files."""

from __future__ import annotations

import os
import pwd
import secrets

from vigil.simulate.registry import scenario
from vigil.simulate.sandbox import Sandbox, resolve_program
from vigil.simulate.scenarios._util import have, q


@scenario(
    "credential-access",
    "Credential hunting that reads nothing: head -c0 of /etc/shadow and of /proc/self/mem, cat of a fake "
    "SSH key and a fake .aws/credentials in the sandbox, a recursive grep for 'password' over /etc that "
    "filters every file out, and find for id_rsa in the sandbox.",
    [
        "ShadowFileAccess",
        "SshPrivateKeyAccess",
        "CloudCredentialAccess",
        "CredentialKeywordSearch",
        "PrivateKeyFileSearch",
        "ProcessMemoryRead",
    ],
)
def credential_access(sb: Sandbox) -> None:
    sb.run(["head", "-c", "0", "/etc/shadow"])
    key = sb.write_file(sb.path("home", ".ssh", "id_rsa"), "vigil-sim fake key, not a key\n")
    sb.run(["cat", str(key)])
    creds = sb.write_file(sb.path("home", ".aws", "credentials"), "[vigil-sim]\naws_access_key_id = NONE\n")
    sb.run(["cat", str(creds)])
    sb.run(["grep", "-r", "-l", "--include=vigil-sim-no-such-file", "password", "/etc"])
    sb.run(["find", str(sb.root), "-name", "id_rsa"])
    sb.run(["head", "-c", "0", "/proc/self/mem"])


@scenario(
    "persistence",
    "Persistence shapes inside the sandbox: a .bashrc created and appended to, an authorized_keys "
    "append, a systemd user timer file, a crontab piped in for a user that does not exist, and "
    "LD_PRELOAD of a library that does not exist. No real profile, key, unit or crontab changes.",
    [
        "ShellProfileWritten",
        "ShellProfileAppend",
        "AuthorizedKeysWritten",
        "AuthorizedKeysAppend",
        "SystemdUnitWritten",
        "CrontabInstalledFromPipeOrTemp",
        "LdPreloadEnvironment",
    ],
)
def persistence(sb: Sandbox) -> None:
    bashrc = sb.write_file(sb.path("home", ".bashrc"), "# vigil-sim\n")
    sb.run(["sh", "-c", f"echo '# vigil-sim' >> {q(bashrc)}"])
    keys = sb.path("home", ".ssh", "authorized_keys")
    sb.run(["sh", "-c", f"echo 'ssh-ed25519 AAAAvigilsim vigil-sim' >> {q(keys)}"])
    sb.expect_file(keys, image=resolve_program("sh"))
    sb.write_file(sb.path("home", ".config", "systemd", "user", "vigil-sim.timer"), "[Timer]\n")
    user = f"vigil-sim-nouser-{secrets.token_hex(4)}"
    try:
        pwd.getpwnam(user)
    except KeyError:
        # crontab refuses the unknown user (or is missing, or we are not root): nothing is installed.
        sb.run(["sh", "-c", f"echo '# vigil-sim' | crontab -u {user} - 2>/dev/null; true"])
    else:  # pragma: no cover - a random name that exists is not worth simulating around
        sb.skip_rules(["CrontabInstalledFromPipeOrTemp"], f"user {user} exists")
    missing_lib = sb.path("vigil-sim-missing.so")
    sb.run(["env", f"LD_PRELOAD={missing_lib}", "true"], children=[("true", "true")])


@scenario(
    "privilege-escalation",
    "chmod g+s on a sandbox directory, a find -exec /bin/sh shell escape that runs 'true', setcap "
    "cap_setuid on a sandbox copy of /bin/true (root), and sudo -n -l (when sudo is installed).",
    ["SetuidSetgidBitSet", "ShellEscapeViaGtfobins", "CapabilityAdded", "SudoRightsEnumeration"],
)
def privilege_escalation(sb: Sandbox) -> None:
    shared = sb.path("shared")
    shared.mkdir()
    sb.run(["chmod", "g+s", str(shared)])
    sb.run(["find", str(sb.root), "-maxdepth", "0", "-exec", "/bin/sh", "-c", "true", ";"])
    if os.geteuid() != 0:
        sb.skip_rules(["CapabilityAdded"], "setcap needs root")
    elif not have("setcap"):
        sb.skip_rules(["CapabilityAdded"], "setcap is not installed")
    else:
        target = sb.copy_program("true", "capcheck")
        sb.run(["setcap", "cap_setuid+ep", str(target)])
    if have("sudo"):
        sb.run(["sudo", "-n", "-l"])
    else:
        sb.skip_rules(["SudoRightsEnumeration"], "sudo is not installed")


@scenario(
    "container-escape",
    "Container-escape look-ups that change nothing: stat of the Docker socket and of a Kubernetes "
    "service-account token, a write to a sandbox file named notify_on_release, and nsenter into "
    "PID 1's UTS namespace to run 'true' (root).",
    [
        "ContainerRuntimeSocketAccess",
        "ServiceAccountTokenRead",
        "CgroupReleaseAgentEscape",
        "NsenterIntoHostPid1",
    ],
)
def container_escape(sb: Sandbox) -> None:
    sb.run(["stat", "/var/run/docker.sock"])
    sb.run(["stat", "/var/run/secrets/kubernetes.io/serviceaccount/token"])
    sb.run(["sh", "-c", f"echo 0 > {q(sb.path('cgroup', 'notify_on_release'))}"])
    if os.geteuid() != 0:
        sb.skip_rules(["NsenterIntoHostPid1"], "nsenter into PID 1 needs root")
    elif not have("nsenter"):
        sb.skip_rules(["NsenterIntoHostPid1"], "nsenter is not installed")
    else:
        sb.run(["nsenter", "--target", "1", "--uts", "--", "true"], children=[("true", "true")])
