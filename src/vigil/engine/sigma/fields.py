"""Where a Sigma field name lives in a vigil event.

Events have the Windows event shape ``{"Event": {"System": {...}, "EventData": {...}}}``. A Sigma
field ``X`` is ``Event.EventData.X`` except the fields Sigma's Windows taxonomy takes from the
``System`` element (table below). ``EventID`` has two paths: EVTX renders an ``EventID`` element
that carries a ``Qualifiers`` attribute as ``{"Qualifiers": ..., "Value": "7045"}``, so a value test
on ``EventID`` also looks at ``EventID.Value``. Value tests on a field with several paths match when
any path matches; ``exists``/``null`` use the primary path.
"""

from __future__ import annotations

from vigil.engine.ir import FieldPath

__all__ = ["SYSTEM_FIELDS", "field_paths"]

_SYSTEM = ("Event", "System")

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
    # System header fields whose names some event payloads also use: both places are tested.
    "Level": ((*_SYSTEM, "Level"), ("Event", "EventData", "Level")),
    "Task": ((*_SYSTEM, "Task"), ("Event", "EventData", "Task")),
    "Opcode": ((*_SYSTEM, "Opcode"), ("Event", "EventData", "Opcode")),
    "Keywords": ((*_SYSTEM, "Keywords"), ("Event", "EventData", "Keywords")),
}


def field_paths(name: str) -> tuple[FieldPath, ...]:
    """The event path(s) a Sigma field name refers to; the first one is the primary path."""
    system = SYSTEM_FIELDS.get(name)
    if system is not None:
        return system
    return (("Event", "EventData", name),)
