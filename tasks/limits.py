"""What one submission to the task queue may ask for: the bounds every caller shares, and who sets them.

A tenant's own submissions (its API, its admin, its schedules) have its plan's
limits: the highest priority, the batch size, the chain length; the operator's
come from the configuration (`tasks.operator_limits`). The bounds below hold
for everyone: no number a client sends can overflow a date, a timer or a
table, whichever surface it comes through (the API, the admin, a command).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from configuration import keys
from tasks.models import Priority

# The furthest ahead a run may be delayed (countdown or run_at).
MAX_DELAY = dt.timedelta(days=365)
# Runs one run may wait for; a wider fan-in goes through an intermediate run.
MAX_DEPENDS_ON = 200
# The task's keyword arguments: serialised size and nesting (a deeper value would recurse in validation).
MAX_ARGUMENTS_BYTES = 64 * 1024
MAX_ARGUMENTS_DEPTH = 32
# Retries and backoff delays (seconds).
MAX_RETRIES = 20
MAX_BACKOFF_SECONDS = 86_400
# The longest timeout a run may have on a broker that leases each run for its own timeout (a day); on any other
# broker the cluster's `retry` minus the lease grace (tasks.actions.validate).
MAX_TIMEOUT_SECONDS = 86_400

@dataclass(frozen=True)
class SubmitLimits:
    """The limits of one submitter. `tenant_submits`: the tenant itself submits (its plan applies)."""

    tenant_submits: bool
    max_priority: int
    max_batch_size: int
    max_chain_length: int
    who: str  # for messages: "the Free plan", "the operator"


def submit_limits(*, tenant, by_operator: bool = False) -> SubmitLimits:
    """The limits of a submission for `tenant` (None: operator work), by the tenant or by the operator for it."""
    if tenant is not None and not by_operator:
        plan = tenant.plan
        if plan is not None:
            return SubmitLimits(tenant_submits=True, max_priority=plan.max_task_priority,
                                max_batch_size=plan.max_task_batch_size, max_chain_length=plan.max_task_chain_length,
                                who=f"the {plan.name} plan")
        # A tenant without a plan (only the public tenant should have none) gets the most careful limits.
        return SubmitLimits(tenant_submits=True, max_priority=Priority.NORMAL, max_batch_size=1, max_chain_length=1,
                            who="a tenant without a plan")
    return SubmitLimits(
        tenant_submits=False, max_priority=Priority.CRITICAL,
        max_batch_size=keys.tasks_operator_max_batch_size(),
        max_chain_length=keys.tasks_operator_max_chain_length(),
        who="the operator's limit (configuration tasks.operator_limits)",
    )
