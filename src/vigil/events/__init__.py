"""vigil.events"""

from vigil.events.evtx import EvtxError, iter_evtx, read_evtx

__all__ = ["EvtxError", "iter_evtx", "read_evtx"]
