"""HTTP APIs of the manager: the endpoint API (agents) and the admin API (operators)."""
