"""Seed the four plans and install the PostgreSQL functions that enforce quotas atomically."""

from django.db import migrations

GIB = 1024**3

PLANS = [
    # code, name, calls/day, storage, users, models, concurrent, price
    ("FREE", "Free", 100, 1 * GIB, 1, 1, 2, 0),
    ("STARTER", "Starter", 10_000, 50 * GIB, 5, 10, 10, 4_900),
    ("PROFESSIONAL", "Professional", 100_000, 500 * GIB, 25, 100, 50, 49_900),
    ("ENTERPRISE", "Enterprise", None, None, None, None, 200, 499_900),
]

# One call per API request. Everything happens in one statement's transaction:
# a per-tenant advisory lock (only when concurrency is limited) serialises the
# lease count, and the daily counter is one conditional upsert that increments
# only while under the limit, so no two requests can both take the last call.
ADMIT_REQUEST = r"""
CREATE OR REPLACE FUNCTION public.courtside_admit_request(
    p_tenant bigint, p_day date, p_call_limit bigint, p_concurrency_limit integer,
    p_token uuid, p_lease_seconds integer
) RETURNS TABLE(outcome text, calls bigint, active integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_calls bigint;
    v_active integer := 0;
BEGIN
    IF p_concurrency_limit IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(1129270611, p_tenant::integer);
        DELETE FROM public.tenants_requestlease WHERE tenant_id = p_tenant AND expires_at < clock_timestamp();
        SELECT count(*) INTO v_active FROM public.tenants_requestlease WHERE tenant_id = p_tenant;
        IF v_active >= p_concurrency_limit THEN
            RETURN QUERY SELECT 'concurrency'::text, NULL::bigint, v_active;
            RETURN;
        END IF;
    END IF;

    IF p_call_limit IS NOT NULL AND p_call_limit <= 0 THEN
        RETURN QUERY SELECT 'calls'::text, 0::bigint, v_active;
        RETURN;
    END IF;

    INSERT INTO public.tenants_usageday AS u
        (tenant_id, date, api_calls, peak_concurrency, storage_bytes, users, saved_models)
    VALUES (p_tenant, p_day, 1, 0, 0, 0, 0)
    ON CONFLICT (tenant_id, date) DO UPDATE SET api_calls = u.api_calls + 1
        WHERE p_call_limit IS NULL OR u.api_calls < p_call_limit
    RETURNING u.api_calls INTO v_calls;

    IF v_calls IS NULL THEN
        RETURN QUERY SELECT 'calls'::text, p_call_limit, v_active;
        RETURN;
    END IF;

    IF p_concurrency_limit IS NOT NULL THEN
        INSERT INTO public.tenants_requestlease (token, tenant_id, expires_at)
        VALUES (p_token, p_tenant, clock_timestamp() + make_interval(secs => p_lease_seconds));
        v_active := v_active + 1;
        UPDATE public.tenants_usageday SET peak_concurrency = v_active
            WHERE tenant_id = p_tenant AND date = p_day AND peak_concurrency < v_active;
    END IF;
    RETURN QUERY SELECT 'ok'::text, v_calls, v_active;
END
$$;
"""

# Row quotas (users, saved models) as a trigger in each tenant schema: it holds
# a per-table advisory lock while counting, so two concurrent inserts cannot
# both take the last slot, whatever path (admin, API, command) they come from.
ENFORCE_ROW_QUOTA = r"""
CREATE OR REPLACE FUNCTION public.courtside_enforce_row_quota() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_column text := TG_ARGV[0];
    v_label text := TG_ARGV[1];
    v_limit bigint;
    v_plan text;
    v_count bigint;
BEGIN
    EXECUTE format(
        'SELECT p.%I, p.name FROM public.tenants_tenant t JOIN public.tenants_plan p ON p.id = t.plan_id '
        'WHERE t.schema_name = $1', v_column)
        INTO v_limit, v_plan USING TG_TABLE_SCHEMA;
    IF v_limit IS NULL THEN
        RETURN NEW;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME));
    EXECUTE format('SELECT count(*) FROM %I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME) INTO v_count;
    IF v_count >= v_limit THEN
        RAISE EXCEPTION 'The % plan allows % %; this tenant has %.', v_plan, v_limit, v_label, v_count
            USING ERRCODE = 'CQ001';
    END IF;
    RETURN NEW;
END
$$;
"""


def seed_plans(apps, schema_editor):
    Plan = apps.get_model("tenants", "Plan")
    for code, name, calls, storage, users, saved_models, concurrent, price in PLANS:
        Plan.objects.update_or_create(
            code=code,
            defaults=dict(
                name=name, api_calls_per_day=calls, storage_bytes=storage, max_users=users,
                max_models=saved_models, max_concurrent_requests=concurrent, monthly_price_cents=price,
            ),
        )


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [
        migrations.RunPython(seed_plans, migrations.RunPython.noop),
        migrations.RunSQL(ADMIT_REQUEST, "DROP FUNCTION IF EXISTS public.courtside_admit_request"),
        migrations.RunSQL(ENFORCE_ROW_QUOTA, "DROP FUNCTION IF EXISTS public.courtside_enforce_row_quota"),
    ]
