"""The built-in simulation scenarios; importing this package registers them, in listing order."""

# isort: off
from vigil.simulate.scenarios import execution, access, evasion, tools, network

# isort: on

__all__ = ["access", "evasion", "execution", "network", "tools"]
