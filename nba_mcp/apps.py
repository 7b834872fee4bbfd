from django.apps import AppConfig


class NbaMcpConfig(AppConfig):
    """The NBA MCP service: each tenant's AI agents reach its NBA data through the Model Context Protocol."""

    name = "nba_mcp"
    label = "nba_mcp"
    verbose_name = "NBA MCP service"
    default_auto_field = "django.db.models.BigAutoField"
