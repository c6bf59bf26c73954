"""Where a Sigma field name lives in a vigil event.

Events have the Windows event shape ``{"Event": {"System": {...}, "EventData": {...}}}``. A Sigma
field ``X`` is ``Event.EventData.X`` except the fields Sigma's Windows taxonomy takes from the
``System`` element (:data:`SYSTEM_FIELDS`). Some fields have several places, and a value test
matches when any of them does:

* ``EventID`` is also ``EventID.Value``: EVTX renders an ``EventID`` element with a ``Qualifiers``
  attribute as ``{"Qualifiers": ..., "Value": "7045"}``.
* ``Level``, ``Task``, ``Opcode``, ``Keywords`` are System header fields that some payloads reuse.
* Events of some channels carry their payload in ``UserData.<Wrapper>`` instead of ``EventData``
  (:data:`USERDATA_WRAPPERS`, e.g. WMI-Activity 5858 ``Operation_ClientFailure``); for rules on
  those channels ``X`` is also ``UserData.<Wrapper>.X``.
* Windows Defender names its EventData with spaces (``Threat Name``) where Sigma's taxonomy has
  ``ThreatName``; for rules on that channel ``X`` is also the space-separated name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from vigil.engine.ir import FieldPath

__all__ = ["DEFENDER_CHANNEL", "SYSTEM_FIELDS", "USERDATA_WRAPPERS", "field_paths"]

_SYSTEM = ("Event", "System")
DEFENDER_CHANNEL = "Microsoft-Windows-Windows Defender/Operational"

#: Sigma field name -> path(s) under ``Event.System`` (first path is the primary one).
SYSTEM_FIELDS: dict[str, tuple[FieldPath, ...]] = {
    "EventID": ((*_SYSTEM, "EventID"), (*_SYSTEM, "EventID", "Value")),
    "Channel": ((*_SYSTEM, "Channel"),),
    "Computer": ((*_SYSTEM, "Computer"),),
    "Provider_Name": ((*_SYSTEM, "Provider", "Name"),),
    "Provider_Guid": ((*_SYSTEM, "Provider", "Guid"),),
    "EventRecordID": ((*_SYSTEM, "EventRecordID"),),
    "Security_UserID": ((*_SYSTEM, "Security", "UserID"),),
    "TimeCreated": ((*_SYSTEM, "TimeCreated", "SystemTime"),),
    "Level": ((*_SYSTEM, "Level"), ("Event", "EventData", "Level")),
    "Task": ((*_SYSTEM, "Task"), ("Event", "EventData", "Task")),
    "Opcode": ((*_SYSTEM, "Opcode"), ("Event", "EventData", "Opcode")),
    "Keywords": ((*_SYSTEM, "Keywords"), ("Event", "EventData", "Keywords")),
}

#: Channel -> the ``UserData`` child elements its events use (Windows event manifests). Security,
#: System and Application carry UserData only in their log-cleared events (1102, 104), whose
#: payload no Sigma rule reads: adding the paths there would cost every rule of those channels.
USERDATA_WRAPPERS: dict[str, tuple[str, ...]] = {
    "Microsoft-Windows-WMI-Activity/Operational": (
        "Operation_ClientFailure",
        "Operation_StartedOperational",
        "Operation_TemporaryEssStarted",
        "Operation_ESStoConsumerBinding",
    ),
    "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational": ("EventXML",),
    "Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational": ("EventXML",),
    "Microsoft-Windows-PrintService/Operational": ("DocumentPrinted",),
    "Microsoft-Windows-AppLocker/EXE and DLL": ("RuleAndFileData",),
    "Microsoft-Windows-AppLocker/MSI and Script": ("RuleAndFileData",),
    "Microsoft-Windows-AppLocker/Packaged app-Deployment": ("RuleAndFileData",),
    "Microsoft-Windows-AppLocker/Packaged app-Execution": ("RuleAndFileData",),
}

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def field_paths(name: str, channels: Iterable[str] = ()) -> tuple[FieldPath, ...]:
    """The event path(s) a Sigma field name refers to for a rule on ``channels``; primary first."""
    system = SYSTEM_FIELDS.get(name)
    if system is not None:
        return system
    paths: list[FieldPath] = [("Event", "EventData", name)]
    for channel in channels:
        for wrapper in USERDATA_WRAPPERS.get(channel, ()):
            path = ("Event", "UserData", wrapper, name)
            if path not in paths:
                paths.append(path)
        if channel == DEFENDER_CHANNEL:
            spaced = _CAMEL.sub(" ", name)
            if spaced != name:
                paths.append(("Event", "EventData", spaced))
    return tuple(paths)
