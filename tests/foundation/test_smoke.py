from django.db import connection
from django_tenants.utils import schema_context

from league.models import Team


def test_each_test_tenant_has_its_own_schema(two_tenants):
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname IN ('lakers', 'warriors')")
        assert {row[0] for row in cursor.fetchall()} == {"lakers", "warriors"}
    with schema_context("lakers"):
        Team.objects.create(nba_id=1, abbreviation="LAL", full_name="Lakers", nickname="Lakers",
                            city="LA", year_founded=1947)
        assert Team.objects.count() == 1
    with schema_context("warriors"):
        assert Team.objects.count() == 0
