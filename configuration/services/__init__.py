"""Every write to the configuration: validated first, all-or-nothing, with history and a NOTIFY.

A package of verb modules: entries (set, delete, roll back), experiments (the kill switch), schemas, reseal
(encryption at rest), importing (config_import), over the one write path in
writes.py. Callers use `from configuration import services; services.entry_set(...)`.
"""

from configuration.services.entries import entry_check, entry_delete, entry_rollback, entry_set
from configuration.services.experiments import experiment_switch
from configuration.services.importing import DiffRow, config_import
from configuration.services.reseal import RESEAL_BATCH, ResealCounts, secrets_reseal, secrets_stored_counts
from configuration.services.schemas import schema_check, schema_set
from configuration.services.writes import MAX_VALUE_BYTES, actor

__all__ = [
    "MAX_VALUE_BYTES", "RESEAL_BATCH", "DiffRow", "ResealCounts", "actor", "config_import", "entry_check",
    "entry_delete", "entry_rollback", "entry_set", "experiment_switch", "schema_check", "schema_set", "secrets_reseal",
    "secrets_stored_counts",
]
