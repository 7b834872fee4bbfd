"""Packages name their TaskRun, and the dequeue claims it in the same statement (tasks.broker._DEQUEUE).

The claim is a PL/pgSQL function called in the dequeue's RETURNING, so a
package without a run (a plain async_task) costs the dequeue nothing: a STRICT
function is not called with a NULL run id, while an UPDATE in the statement
itself (a data-modifying CTE) opened the run table and its indexes on every
dequeue and made plain django-q2 tasks 15 % slower here. PL/pgSQL also keeps
the UPDATE's plan for the session; it is planned with sequential scans off,
since a plan made while the table was empty would scan it once it is full.
It returns what the worker needs of the claimed run as one jsonb value.
"""

from django.db import migrations, models
from django_tenants.utils import get_public_schema_name

CLAIM = """
CREATE OR REPLACE FUNCTION "{schema}".courtside_claim_run(claimed_run uuid, lease_grace integer)
RETURNS jsonb
LANGUAGE plpgsql STRICT VOLATILE
SET enable_seqscan = off
AS $$
DECLARE
    claim jsonb;
BEGIN
    UPDATE "{schema}".tasks_taskrun AS r
    SET status = 'running', attempts = r.attempts + 1, started_at = COALESCE(r.started_at, now()),
        lease_until = now() + make_interval(secs => r.timeout + lease_grace), worker_pid = NULL,
        next_attempt_at = NULL, updated_at = now()
    WHERE r.id = claimed_run AND r.status IN ('queued', 'retrying') AND NOT r.cancel_requested
        AND (r.next_attempt_at IS NULL OR r.next_attempt_at <= now() + interval '1 second')
    RETURNING jsonb_build_object(
        'id', r.id, 'name', r.name, 'arguments', r.arguments, 'schema_name', r.schema_name,
        'priority', r.priority, 'status', r.status, 'attempts', r.attempts, 'timeout', r.timeout,
        'tenant_id', r.tenant_id, 'claimed_at', extract(epoch FROM now()))
    INTO claim;
    RETURN claim;
END
$$
"""


def create_claim(apps, schema_editor):
    schema_editor.execute(CLAIM.format(schema=get_public_schema_name()))


def drop_claim(apps, schema_editor):
    schema_editor.execute(f'DROP FUNCTION IF EXISTS "{get_public_schema_name()}".courtside_claim_run(uuid, integer)')


class Migration(migrations.Migration):

    dependencies = [
        ('tasks', '0003_recover_stalled_runs_schedule'),
    ]

    operations = [
        migrations.AddField(
            model_name='queuemessage',
            name='run_id',
            field=models.UUIDField(blank=True, null=True, verbose_name='task run'),
        ),
        migrations.RunPython(create_claim, drop_claim),
    ]
