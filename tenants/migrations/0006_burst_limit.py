"""The burst limit (api.rate_limit_per_minute) in the one admission, and the anonymous per-address limit.

courtside_admit_request gains p_burst_limit: the day's ledger row carries the
current UTC minute's count, and the one conditional upsert that counts the
call increments both counters only while both are under their limits, so no
two requests on any number of web servers can over-admit either. The window
is the database's clock (date_trunc('minute', clock_timestamp())), never a web server's,
so servers with skewed clocks share one window. A refusal says which limit
refused and, for the burst limit, the seconds to the window's end. The new
parameter defaults to NULL (no burst limit), so a process still running the
previous code during a deploy keeps working.

courtside_admit_anonymous counts anonymous requests per (host's tenant,
client address) and minute in an UNLOGGED table: one upsert, refused at the
limit, never touching a tenant's quota or leases.
"""

import django.db.models.deletion
from django.db import migrations, models

OLD_SIGNATURE = "public.courtside_admit_request(bigint, date, bigint, integer, uuid, integer)"
NEW_SIGNATURE = "public.courtside_admit_request(bigint, date, bigint, integer, uuid, integer, integer)"

ADMIT_REQUEST = r"""
CREATE FUNCTION public.courtside_admit_request(
    p_tenant bigint, p_day date, p_call_limit bigint, p_concurrency_limit integer,
    p_token uuid, p_lease_seconds integer, p_burst_limit integer DEFAULT NULL
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
    IF p_concurrency_limit IS NOT NULL THEN
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
         burst_window_start, burst_calls)
    VALUES (p_tenant, p_day, 1, 0, 0, 0, 0, v_window, 1)
    ON CONFLICT (tenant_id, date) DO UPDATE SET
        api_calls = u.api_calls + 1,
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

ADMIT_ANONYMOUS = r"""
CREATE FUNCTION public.courtside_admit_anonymous(p_tenant bigint, p_address text, p_limit integer)
RETURNS TABLE(calls integer, retry_after integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_window timestamptz := date_trunc('minute', clock_timestamp());
    v_calls integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO public.tenants_anonymouswindow AS w (tenant_id, address, window_start, calls)
    VALUES (p_tenant, p_address, v_window, 1)
    ON CONFLICT (tenant_id, address) DO UPDATE SET
        window_start = EXCLUDED.window_start,
        calls = CASE WHEN w.window_start = EXCLUDED.window_start THEN w.calls + 1 ELSE 1 END
        WHERE w.window_start IS DISTINCT FROM EXCLUDED.window_start OR w.calls < p_limit
    RETURNING w.calls INTO v_calls;
    -- Now and then, forget addresses not seen for a while; bounded, and never waiting on a busy row.
    IF random() < 0.01 THEN
        DELETE FROM public.tenants_anonymouswindow WHERE id IN (
            SELECT id FROM public.tenants_anonymouswindow WHERE window_start < v_window - interval '5 minutes'
            LIMIT 1000 FOR UPDATE SKIP LOCKED);
    END IF;
    RETURN QUERY SELECT v_calls, CASE WHEN v_calls IS NULL THEN greatest(1, ceil(extract(epoch FROM
        v_window + interval '1 minute' - clock_timestamp())))::integer END;
END
$$;
"""


def _previous_admit() -> str:
    import importlib

    return importlib.import_module("tenants.migrations.0004_fast_metering").ADMIT_ASYNC


class Migration(migrations.Migration):

    dependencies = [
        ('tenants', '0005_logo_png_or_jpeg'),
    ]

    operations = [
        migrations.AddField(
            model_name='usageday',
            name='burst_calls',
            field=models.PositiveIntegerField(db_default=0, default=0, editable=False, verbose_name='calls in the burst window'),
        ),
        migrations.AddField(
            model_name='usageday',
            name='burst_window_start',
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name='burst window start'),
        ),
        migrations.CreateModel(
            name='AnonymousWindow',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('address', models.CharField(help_text='IPv4 address, or IPv6 /64 network.', max_length=64, verbose_name='client address')),
                ('window_start', models.DateTimeField(verbose_name='window start')),
                ('calls', models.PositiveIntegerField(default=0, verbose_name='calls')),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('tenant', 'address'), name='anonymous_one_window_per_address')],
            },
        ),
        migrations.RunSQL("ALTER TABLE tenants_anonymouswindow SET UNLOGGED",
                          "ALTER TABLE tenants_anonymouswindow SET LOGGED"),
        # The signature grows by one parameter: drop and create in this one transaction.
        migrations.RunSQL(f"DROP FUNCTION {OLD_SIGNATURE};\n{ADMIT_REQUEST}",
                          f"DROP FUNCTION {NEW_SIGNATURE};\n{_previous_admit()}"),
        migrations.RunSQL(ADMIT_ANONYMOUS, "DROP FUNCTION IF EXISTS public.courtside_admit_anonymous"),
    ]
