"""vigil.events"""

from vigil.events.evtx import EvtxError, read_evtx

__all__ = ["EvtxError", "read_evtx"]
