"""check_actions: one entry per action, with a reason."""

from __future__ import annotations

import os
import shutil

from vigil.agent.actions import ACTIONS, check_actions


def test_every_action_and_contain_is_probed() -> None:
    found = {a.name: a for a in check_actions()}
    assert set(ACTIONS) | {"contain", "canaries"} == set(found)
    assert all(a.reason for a in found.values())
    assert found["contain"].available == (shutil.which("nft") is not None)
    if os.geteuid() == 0:
        assert found["blacklist"].available and "fanotify" in found["blacklist"].reason
        assert "names the process" in found["canaries"].reason
