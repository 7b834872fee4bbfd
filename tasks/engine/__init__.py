"""The engine of the task layer: how a submitted run reaches a worker and how its outcome is recorded.

One run, top to bottom (each step one module):
  broker.py      enqueue_run hands a run's package to the broker the settings name (orm_broker.py,
                 redis_broker.py; rows.py writes new run rows fast)
  claim.py       the claim rule, written once: the dequeue's PL/pgSQL claim, a worker's one-statement
                 claim and the slow path under a row lock
  delivery.py    what the worker knows of the package it runs: the claim carried in, the success carried
                 out to the broker's acknowledgement
  execution.py   run_execute: claim, the task inside its tenant's schema under the watchdog, the outcome
  outcome.py     success / failure / retry with backoff / timeout / lost attempt recorded
  dependencies.py, recovery.py, context.py (TaskContext, progress), watchdog.py, sql.py
The public API that submits, cancels, retries and schedules runs is tasks.actions.
"""
