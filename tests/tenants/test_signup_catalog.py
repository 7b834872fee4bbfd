"""A sign-up's case-insensitive schema-name check reads an index, not every tenant (issue 19, sign-up at 10,000).

django-tenants refuses a new tenant whose schema name differs only in case from an existing one
(`schema_name__iexact` in TenantMixin.save): a sequential scan of tenants_tenant without an index on
UPPER(schema_name), 3.7 ms of each sign-up at 10,000 tenants and growing with them.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tenants.models import Tenant


@pytest.mark.django_db
def test_the_case_insensitive_schema_name_check_is_an_index_lookup():
    with CaptureQueriesContext(connection) as captured:
        Tenant.objects.filter(schema_name__iexact="Lakers_New").exists()
    (query,) = [q["sql"] for q in captured.captured_queries if "UPPER" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # what the planner picks once there are many tenants
        cursor.execute("EXPLAIN " + query)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "tenant_schema_name_upper" in plan, plan
