"""vigil.manager: the WHIDS-compatible fleet manager (endpoint API, admin API, storage, streams)."""

from vigil.manager.app import create_admin_app, create_endpoint_app
from vigil.manager.config import ManagerConfig
from vigil.manager.errors import ManagerError
from vigil.manager.state import Manager

__all__ = ["Manager", "ManagerConfig", "ManagerError", "create_admin_app", "create_endpoint_app"]
