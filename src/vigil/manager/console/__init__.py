"""The web console: a single page on the admin listener (``/ui/``) over the admin API."""

from vigil.manager.console.router import PUBLIC_CONSOLE_PATHS, ConsoleForbidden, console_user, router

__all__ = ["PUBLIC_CONSOLE_PATHS", "ConsoleForbidden", "console_user", "router"]
