"""Billing and surfaces: a plan's overage price, and the ledger counts the calls that came through MCP.

- `Plan.overage_price_cents_per_1000`: what 1,000 calls past the daily quota cost on the plan. Empty (or 0)
  means the plan blocks at its quota (429), as before; a price means calls past it are admitted and billed.
- `UsageDay.mcp_calls`: of the day's `api_calls`, those admitted through the MCP server; the rest came
  through the REST API (or its task runs). Counted by the one admission upsert (courtside_admit_request
  gains p_mcp, default false, so a process running the previous code during a deploy keeps working).
The whole function is written out here; the reverse puts 0009's version back.
"""

import importlib

from django.db import migrations, models

OLD_SIGNATURE = "public.courtside_admit_request(bigint, date, bigint, integer, uuid, integer, integer, integer)"
NEW_SIGNATURE = ("public.courtside_admit_request(bigint, date, bigint, integer, uuid, integer, integer, integer, "
                 "boolean)")

ADMIT_REQUEST = r"""
CREATE FUNCTION public.courtside_admit_request(
    p_tenant bigint, p_day date, p_call_limit bigint, p_concurrency_limit integer,
    p_token uuid, p_lease_seconds integer, p_burst_limit integer DEFAULT NULL, p_calls integer DEFAULT NULL,
    p_mcp boolean DEFAULT false
) RETURNS TABLE(outcome text, calls bigint, active integer, retry_after integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_calls bigint;
    v_active integer := 0;
    v_window timestamptz := date_trunc('minute', clock_timestamp());
    v_used bigint;
    v_burst integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);

    IF p_calls IS NOT NULL THEN
        -- Several calls at once (task runs): against the day only, all or none; no lease, no burst window.
        IF p_calls < 1 THEN
            RAISE EXCEPTION 'p_calls must be at least 1, not %', p_calls;
        END IF;
        INSERT INTO public.tenants_usageday AS u
            (tenant_id, date, api_calls, peak_concurrency, storage_bytes, users, saved_models, burst_calls, mcp_calls)
        SELECT p_tenant, p_day, p_calls, 0, 0, 0, 0, 0, CASE WHEN p_mcp THEN p_calls ELSE 0 END
            WHERE p_call_limit IS NULL OR p_calls <= p_call_limit
        ON CONFLICT (tenant_id, date) DO UPDATE SET api_calls = u.api_calls + p_calls,
            mcp_calls = u.mcp_calls + CASE WHEN p_mcp THEN p_calls ELSE 0 END
            WHERE p_call_limit IS NULL OR u.api_calls + p_calls <= p_call_limit
        RETURNING u.api_calls INTO v_calls;
        IF v_calls IS NULL THEN
            SELECT u.api_calls INTO v_used FROM public.tenants_usageday u WHERE u.tenant_id = p_tenant AND u.date = p_day;
            RETURN QUERY SELECT 'calls'::text, coalesce(v_used, 0), 0, NULL::integer;
        ELSE
            RETURN QUERY SELECT 'ok'::text, v_calls, 0, NULL::integer;
        END IF;
        RETURN;
    END IF;

    IF p_concurrency_limit IS NOT NULL THEN
        -- core.locks.ADVISORY_LOCK_KEYS["request-admission"], the tenant's id as the second key
        PERFORM pg_advisory_xact_lock(1129270611, p_tenant::integer);
        DELETE FROM public.tenants_requestlease WHERE tenant_id = p_tenant AND expires_at < clock_timestamp();
        SELECT count(*) INTO v_active FROM public.tenants_requestlease WHERE tenant_id = p_tenant;
        IF v_active >= p_concurrency_limit THEN
            RETURN QUERY SELECT 'concurrency'::text, NULL::bigint, v_active, NULL::integer;
            RETURN;
        END IF;
    END IF;

    IF p_call_limit IS NOT NULL AND p_call_limit <= 0 THEN
        RETURN QUERY SELECT 'calls'::text, 0::bigint, v_active, NULL::integer;
        RETURN;
    END IF;

    -- One statement counts the call against the day and the minute, or against neither.
    INSERT INTO public.tenants_usageday AS u
        (tenant_id, date, api_calls, peak_concurrency, storage_bytes, users, saved_models,
         burst_window_start, burst_calls, mcp_calls)
    VALUES (p_tenant, p_day, 1, 0, 0, 0, 0, v_window, 1, p_mcp::integer)
    ON CONFLICT (tenant_id, date) DO UPDATE SET
        api_calls = u.api_calls + 1,
        mcp_calls = u.mcp_calls + p_mcp::integer,
        burst_window_start = EXCLUDED.burst_window_start,
        burst_calls = CASE WHEN u.burst_window_start = EXCLUDED.burst_window_start
                           THEN u.burst_calls + 1 ELSE 1 END
        WHERE (p_call_limit IS NULL OR u.api_calls < p_call_limit)
          AND (p_burst_limit IS NULL OR u.burst_window_start IS DISTINCT FROM EXCLUDED.burst_window_start
               OR u.burst_calls < p_burst_limit)
    RETURNING u.api_calls INTO v_calls;

    IF v_calls IS NULL THEN
        -- Refused: the row is locked by the upsert, so this reads what refused it.
        SELECT u.api_calls, u.burst_calls INTO v_used, v_burst
            FROM public.tenants_usageday u WHERE u.tenant_id = p_tenant AND u.date = p_day;
        IF p_call_limit IS NOT NULL AND v_used >= p_call_limit THEN
            RETURN QUERY SELECT 'calls'::text, p_call_limit, v_active, NULL::integer;
        ELSE
            RETURN QUERY SELECT 'burst'::text, v_burst::bigint, v_active, greatest(1, ceil(extract(epoch FROM
                v_window + interval '1 minute' - clock_timestamp())))::integer;
        END IF;
        RETURN;
    END IF;

    IF p_concurrency_limit IS NOT NULL THEN
        INSERT INTO public.tenants_requestlease (token, tenant_id, expires_at)
        VALUES (p_token, p_tenant, clock_timestamp() + make_interval(secs => p_lease_seconds));
        v_active := v_active + 1;
        UPDATE public.tenants_usageday SET peak_concurrency = v_active
            WHERE tenant_id = p_tenant AND date = p_day AND peak_concurrency < v_active;
    END IF;
    RETURN QUERY SELECT 'ok'::text, v_calls, v_active, NULL::integer;
END
$$;
"""


def _previous_admit() -> str:
    return importlib.import_module("tenants.migrations.0009_admit_calls").ADMIT_REQUEST


class Migration(migrations.Migration):

    dependencies = [
        ('tenants', '0009_admit_calls'),
    ]

    operations = [
        migrations.AddField(
            model_name='plan',
            name='overage_price_cents_per_1000',
            field=models.PositiveIntegerField(
                blank=True, null=True, verbose_name='overage price per 1,000 calls (cents)',
                help_text='Empty or 0: calls past the daily quota are refused. A price: they are admitted and '
                          'billed per 1,000.'),
        ),
        migrations.AddField(
            model_name='usageday',
            name='mcp_calls',
            field=models.PositiveBigIntegerField(db_default=0, default=0, verbose_name='of which through MCP'),
        ),
        migrations.RunSQL(f"DROP FUNCTION {OLD_SIGNATURE};\n{ADMIT_REQUEST}",
                          f"DROP FUNCTION {NEW_SIGNATURE};\n{_previous_admit()}"),
    ]
