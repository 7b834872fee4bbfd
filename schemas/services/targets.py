"""Parse a migration target ('app.0002_name', 'app zero') against the migration graph."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from schemas.graph import load_graph


def parse_target(value: str) -> tuple[str, str | None]:
    """'app.0002_name', 'app:0002_name', 'app 0002' or 'app.zero' to a (app, name) target."""
    value = (value or "").strip()
    for sep in (":", ".", " "):
        if sep in value:
            app, name = value.split(sep, 1)
            break
    else:
        raise ValidationError({"target": f"{value!r}: give a target as app.migration_name (or app.zero)."})
    graph = load_graph()
    if name == "zero":
        return (app, None)
    try:
        migration = graph.loader.get_migration_by_prefix(app, name)
    except Exception as error:  # AmbiguityError or KeyError with Django's own message
        raise ValidationError({"target": f"{value!r}: {error}"}) from error
    return (migration.app_label, migration.name)
