"""Every write of the schemas app, one module per verb: `drift` (drift_report), `rollout` (rollout_run),
`targets` (parse_target), `lock` (rollout_lock), `workers` (the rollout's pool). Callers import from here.
"""

from schemas.ledger import (  # noqa: F401  (ledger_* are also reached as schemas.services.*)
    ledger_baseline,
    ledger_record,
    ledger_record_failure,
    ledger_record_stock_plan,
    ledger_schema_forget,
    ledger_schema_rename,
    now,
    operator_name,
)
from schemas.services.drift import DriftReport, SchemaReport, drift_report  # noqa: F401
from schemas.services.lock import ROLLOUT_LOCK_KEY, RolloutRefused, rollout_lock  # noqa: F401
from schemas.services.rollout import RolloutResult, rollout_run  # noqa: F401
from schemas.services.targets import parse_target  # noqa: F401
from schemas.services.workers import default_workers  # noqa: F401
