"""What each shipped configuration key drives: one reader per key of configuration/defaults/defaults.yaml.

Product code reads its keys through these functions, never by spelling a key
itself, so each key has exactly one meaning and one place that says it
(tests/configuration/test_key_registry.py checks that every shipped key has
a reader here and a line in the docs). Each reads the current view (inside a
tenant's context, that tenant's: the tenant layer and the operator's entry for
the tenant win) unless `tenant` names a view ("public" is the operator's).
Reads are the facade's dict lookups (a few microseconds), so callers read on
every request or task and a change is live as soon as the process's snapshot
is dropped (hot reload, under a second).
"""

from __future__ import annotations

from configuration import layers
from configuration.conf import config

SCORED_STATISTICS = ("points", "rebounds", "assists", "steals", "blocks", "turnovers")
# Turnovers cost points: their weight is subtracted.
PENALISED_STATISTICS = frozenset({"turnovers"})


def _limit(value) -> int | None:
    """A per-minute limit: 0 means none."""
    return int(value) if value else None


def api_page_size(*, tenant=None) -> int:
    """Default page size of every paginated list of both APIs (operator and tenant)."""
    return config.get("api.page_size", tenant=tenant)


def api_page_size_bounds(*, shipped: bool = False) -> tuple[int, int]:
    """(minimum, maximum) of a page size a client may ask for: the key's schemas' bounds.

    shipped: the code's schemas only, without the database's (the OpenAPI document is
    generated where there may be no database, as by `manage.py check`).
    """
    schemas = layers.load_code_schemas() if shipped else config.schemas()
    return (_schema_bound(schemas, "api.page_size", "minimum", max) or 1,
            _schema_bound(schemas, "api.page_size", "maximum", min) or 500)


def api_burst_limit(*, tenant=None) -> int | None:
    """Authenticated API calls one tenant may make per UTC minute (None: no burst limit)."""
    return _limit(config.get("api.rate_limit_per_minute", tenant=tenant))


def anonymous_rate_limit(*, tenant=None) -> int | None:
    """Anonymous requests one client address may make per UTC minute on one host (None: no limit)."""
    return _limit(config.get("anonymous.rate_limit_per_minute", tenant=tenant))


def cache_ttl_seconds(*, tenant=None) -> int:
    """Lifetime of a cached tenant API response (writes drop it sooner)."""
    return config.get("cache.ttl_seconds", tenant=tenant)


def new_scoring_enabled(*, tenant=None) -> bool:
    """flags.new_scoring: whether the tenant may use scoring.model "new"."""
    return config.flag("new_scoring", tenant=tenant)


def experiment_variant(name: str, *, tenant=None, user=None) -> str | None:
    """experiments.<name>: the variant the tenant (and user) is assigned, counted as an exposure (None: no experiment).

    The operator's experiments are named at runtime like flags, so they are not shipped keys of READERS.
    """
    return config.variant(name, tenant=tenant, user=user)


def experiment_assignments(*, tenant=None, user=None) -> dict[str, str | None]:
    """Every experiment of the view with the variant the tenant (and user) gets: the tenant API's `experiments`."""
    names = sorted((config.get("experiments", default={}, tenant=tenant) or {}).keys())
    return {name: experiment_variant(name, tenant=tenant, user=user) for name in names}


def scoring_model(*, tenant=None) -> str:
    """The player-score model in force: "new" only where asked for and allowed by flags.new_scoring."""
    wanted = config.get("scoring.model", tenant=tenant)
    return "new" if wanted == "new" and new_scoring_enabled(tenant=tenant) else "classic"


def scoring_weights(*, tenant=None) -> dict[str, float]:
    """Weight of each per-game statistic in the player score (statistics without one count nothing)."""
    weights = config.get("scoring.weights", tenant=tenant) or {}
    return {name: float(weights[name]) for name in SCORED_STATISTICS if name in weights}


def welcome_message(*, tenant=None) -> str:
    """The heading of the tenant admin's home page."""
    return config.get("branding.welcome_message", tenant=tenant)


def reports_default_season(*, tenant=None) -> str:
    """The season the averages endpoint answers for when none is asked for."""
    return config.get("reports.default_season", tenant=tenant)


def reports_max_rows(*, tenant=None) -> int:
    """Row cap of every export (usage report task, usage_export); past it the export is refused."""
    return config.get("reports.max_rows", tenant=tenant)


def security_require_mfa(*, tenant=None) -> bool:
    """Whether a tenant's admin asks two-factor authentication of all its staff (security.mfa)."""
    return bool(config.get("security.require_mfa", default=False, tenant=tenant))


def tasks_operator_max_batch_size() -> int:
    """Runs one operator batch may hold (a tenant's batches are bounded by its plan)."""
    return int(config.get("tasks.operator_limits.max_batch_size", tenant="public"))


def tasks_operator_max_chain_length() -> int:
    """The longest dependency chain an operator's run may end (a tenant's: its plan)."""
    return int(config.get("tasks.operator_limits.max_chain_length", tenant="public"))


def mcp_max_results(*, tenant=None) -> int:
    """Row cap of one MCP tool result (nba_mcp): a tool's `limit` argument is bounded by it."""
    return int(config.get("mcp.max_results", tenant=tenant))


def mcp_plan_tools(*, plan: str | None, tenant=None) -> frozenset[str] | None:
    """The MCP tools a plan may use (mcp.plan_tools.<plan code in lowercase>); None: every tool (not named, "*")."""
    named = (config.get("mcp.plan_tools", tenant=tenant) or {}).get((plan or "").lower())
    if named is None or "*" in named:
        return None
    return frozenset(named)


def _schema_bound(schemas: dict, key: str, keyword: str, pick) -> int | None:
    """The tightest `keyword` (minimum/maximum) any schema at or above `key` sets for it."""
    parts = key.split(".")
    found = []
    for depth in range(1, len(parts) + 1):
        node = (schemas.get(".".join(parts[:depth])) or {}).get("schema") or {}
        for part in parts[depth:]:
            node = (node.get("properties") or {}).get(part) or {}
        if isinstance(node.get(keyword), int | float):
            found.append(int(node[keyword]))
    return pick(found) if found else None


READERS = {
    "api.page_size": api_page_size,
    "api.rate_limit_per_minute": api_burst_limit,
    "anonymous.rate_limit_per_minute": anonymous_rate_limit,
    "cache.ttl_seconds": cache_ttl_seconds,
    "scoring.model": scoring_model,
    "scoring.weights.points": scoring_weights,
    "scoring.weights.rebounds": scoring_weights,
    "scoring.weights.assists": scoring_weights,
    "branding.welcome_message": welcome_message,
    "reports.default_season": reports_default_season,
    "reports.max_rows": reports_max_rows,
    "flags.new_scoring": new_scoring_enabled,
    "security.require_mfa": security_require_mfa,
    "tasks.operator_limits.max_batch_size": tasks_operator_max_batch_size,
    "tasks.operator_limits.max_chain_length": tasks_operator_max_chain_length,
    "mcp.max_results": mcp_max_results,
    "mcp.plan_tools.free": mcp_plan_tools,
}
