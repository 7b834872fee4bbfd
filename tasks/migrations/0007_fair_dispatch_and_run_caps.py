"""Fair dispatch and the cap on a tenant's unfinished runs (issue 14.9).

- QueueMessage.tenant_key: whose package it is; the dequeue (tasks.broker) takes turns by it within the
  highest priority that has due packages. The dispatch index becomes (queue, priority, tenant_key, id).
- TenantRunCount and triggers on the run table: every run of a tenant inserted unfinished counts as
  submitted, every one that finishes (or is deleted unfinished) as finished; an insert that would leave
  the tenant more unfinished runs than its plan's max_active_task_runs is refused (SQLSTATE CQ002), so no
  path (the API, a batch's COPY, a retry, a schedule) can exceed it. The WHEN clauses keep the operator's
  runs (no tenant) and updates that do not finish a run from ever calling the function: the task
  layer's hot statements pay nothing for it.
"""

import django.db.models.deletion
from django.db import migrations, models
from django_tenants.utils import get_public_schema_name

TERMINAL = "('succeeded', 'failed', 'cancelled')"

COUNT_RUNS = """
CREATE OR REPLACE FUNCTION "{schema}".courtside_count_task_runs() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_submitted bigint;
    v_finished bigint;
    v_limit bigint;
    v_plan text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- Locks the tenant's `submitted` row until this transaction ends: concurrent submissions of one
        -- tenant queue here, so two cannot both take the last place.
        INSERT INTO "{schema}".tasks_tenantruncount AS c (tenant_id, side, runs) VALUES (NEW.tenant_id, 'submitted', 1)
        ON CONFLICT (tenant_id, side) DO UPDATE SET runs = c.runs + 1
        RETURNING c.runs INTO v_submitted;
        SELECT p.max_active_task_runs, p.name INTO v_limit, v_plan
        FROM "{schema}".tenants_tenant t JOIN "{schema}".tenants_plan p ON p.id = t.plan_id WHERE t.id = NEW.tenant_id;
        IF v_limit IS NOT NULL THEN
            -- Read, not locked: a finish not yet committed only makes the check stricter for a moment.
            SELECT c.runs INTO v_finished FROM "{schema}".tasks_tenantruncount c
            WHERE c.tenant_id = NEW.tenant_id AND c.side = 'finished';
            IF v_submitted - COALESCE(v_finished, 0) > v_limit THEN
                RAISE EXCEPTION 'The % plan allows % unfinished task runs at once.', v_plan, v_limit
                    USING ERRCODE = 'CQ002', DETAIL = (v_submitted - 1 - COALESCE(v_finished, 0))::text;
            END IF;
        END IF;
    ELSE
        INSERT INTO "{schema}".tasks_tenantruncount AS c (tenant_id, side, runs)
        VALUES (OLD.tenant_id, 'finished',
                CASE WHEN TG_OP = 'UPDATE' AND NEW.status NOT IN {terminal} THEN -1 ELSE 1 END)
        ON CONFLICT (tenant_id, side) DO UPDATE SET runs = c.runs + EXCLUDED.runs;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER taskrun_count_submitted AFTER INSERT ON "{schema}".tasks_taskrun
    FOR EACH ROW WHEN (NEW.tenant_id IS NOT NULL AND NEW.status NOT IN {terminal})
    EXECUTE FUNCTION "{schema}".courtside_count_task_runs();
CREATE TRIGGER taskrun_count_finished AFTER UPDATE OF status ON "{schema}".tasks_taskrun
    FOR EACH ROW WHEN (OLD.tenant_id IS NOT NULL AND (OLD.status IN {terminal}) <> (NEW.status IN {terminal}))
    EXECUTE FUNCTION "{schema}".courtside_count_task_runs();
CREATE TRIGGER taskrun_count_deleted AFTER DELETE ON "{schema}".tasks_taskrun
    FOR EACH ROW WHEN (OLD.tenant_id IS NOT NULL AND OLD.status NOT IN {terminal})
    EXECUTE FUNCTION "{schema}".courtside_count_task_runs();
INSERT INTO "{schema}".tasks_tenantruncount (tenant_id, side, runs)
    SELECT tenant_id, 'submitted', count(*) FROM "{schema}".tasks_taskrun
    WHERE tenant_id IS NOT NULL AND status NOT IN {terminal} GROUP BY tenant_id;
UPDATE "{schema}".tasks_queuemessage m SET tenant_key = r.tenant_id
    FROM "{schema}".tasks_taskrun r WHERE r.id = m.run_id AND r.tenant_id IS NOT NULL;
"""

UNCOUNT_RUNS = """
DROP TRIGGER IF EXISTS taskrun_count_submitted ON "{schema}".tasks_taskrun;
DROP TRIGGER IF EXISTS taskrun_count_finished ON "{schema}".tasks_taskrun;
DROP TRIGGER IF EXISTS taskrun_count_deleted ON "{schema}".tasks_taskrun;
DROP FUNCTION IF EXISTS "{schema}".courtside_count_task_runs();
"""


def count_runs(apps, schema_editor):
    # No parameters: the function body has % placeholders of its own (RAISE).
    schema_editor.execute(COUNT_RUNS.format(schema=get_public_schema_name(), terminal=TERMINAL), params=None)


def uncount_runs(apps, schema_editor):
    schema_editor.execute(UNCOUNT_RUNS.format(schema=get_public_schema_name()))


class Migration(migrations.Migration):

    dependencies = [
        ('tasks', '0006_dependency_depth'),
        ('tenants', '0007_task_limits'),
    ]

    operations = [
        migrations.CreateModel(
            name='TenantRunCount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('side', models.CharField(choices=[('submitted', 'Submitted'), ('finished', 'Finished')], max_length=16, verbose_name='side')),
                ('runs', models.BigIntegerField(default=0, verbose_name='runs')),
            ],
        ),
        migrations.RemoveIndex(
            model_name='queuemessage',
            name='queuemessage_dispatch',
        ),
        migrations.AddField(
            model_name='queuemessage',
            name='tenant_key',
            field=models.BigIntegerField(default=0, verbose_name='tenant'),
        ),
        migrations.AddIndex(
            model_name='queuemessage',
            index=models.Index(fields=['queue', 'priority', 'tenant_key', 'id'], name='queuemessage_fair_dispatch'),
        ),
        migrations.AddField(
            model_name='tenantruncount',
            name='tenant',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant', verbose_name='tenant'),
        ),
        migrations.AddConstraint(
            model_name='tenantruncount',
            constraint=models.UniqueConstraint(fields=('tenant', 'side'), name='tenantruncount_unique_side'),
        ),
        migrations.RunPython(count_runs, uncount_runs),
    ]
