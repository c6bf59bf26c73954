"""vigil: an open-source Linux EDR with a Gene/Sigma rule engine and a WHIDS-compatible manager."""

__version__ = "0.1.0"
__all__ = ["__version__"]
