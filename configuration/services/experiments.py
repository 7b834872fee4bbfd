"""The kill switch of an experiment: off sends every tenant to its control, in every process within a second."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from configuration.layers import PUBLIC
from configuration.models import ConfigEntry
from configuration.services.entries import entry_set
from configuration.store import store


def _defined(name: str) -> None:
    spec = store.snapshot(PUBLIC).flat.get(f"experiments.{name}")
    if not isinstance(spec, dict) or "variants" not in spec:
        raise ValidationError({"experiment": [f"No experiment {name!r} (define experiments.{name} first)."]})


def experiment_switch(*, name: str, enabled: bool, changed_by: str = "", source: str = "code") -> ConfigEntry:
    """Turn an experiment on or off (the kill switch) in the database layer: experiments.<name>.enabled.

    The entry deep-merges over the experiment's definition wherever it lives
    (a file, the database); only a COURTSIDE_EXPERIMENTS__... variable, which
    always wins, could pin it.
    """
    _defined(name)
    return entry_set(key=f"experiments.{name}.enabled", value=bool(enabled), changed_by=changed_by, source=source)
