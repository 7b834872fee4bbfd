"""Migration types (issue 18, first step): each migration is schema, data or hybrid, and `migration_status` says which.

The type is what the file declares (`migration_type`, or `sql_file_type` in a migration `sqlmigration` wrote),
else what its operations are: only RunPython is data, RunPython beside schema operations is hybrid, the rest is
schema.
"""

import json
from io import StringIO

from django.core.management import call_command

DATA = """
    from django.db import migrations


    def forwards(apps, schema_editor):
        apps.get_model("courtside_probe", "Gadget").objects.update(name="x")


    class Migration(migrations.Migration):
        dependencies = [("courtside_probe", "0001_initial")]
        operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
"""
HYBRID = """
    from django.db import migrations, models


    class Migration(migrations.Migration):
        dependencies = [("courtside_probe", "0002_fill")]
        operations = [
            migrations.AddField("gadget", "size", models.IntegerField(default=0)),
            migrations.RunPython(migrations.RunPython.noop, migrations.RunPython.noop),
        ]
"""
DECLARED = """
    from django.db import migrations


    class Migration(migrations.Migration):
        dependencies = [("courtside_probe", "0003_size")]
        sql_file_type = "data"
        operations = [migrations.RunSQL("UPDATE courtside_probe_gadget SET size = 1", migrations.RunSQL.noop)]
"""


def _status(*args, **options) -> str:
    out = StringIO()
    call_command("migration_status", *args, stdout=out, **options)
    return out.getvalue()


def test_migration_status_names_each_pending_migrations_type(probe):
    probe.write("0002_fill", DATA)
    probe.write("0003_size", HYBRID)
    probe.write("0004_declared", DECLARED)

    text = _status(schema=["lakers"])
    assert "pending   courtside_probe.0001_initial  (schema)" in text
    assert "pending   courtside_probe.0002_fill  (data)" in text
    assert "pending   courtside_probe.0003_size  (hybrid)" in text
    assert "pending   courtside_probe.0004_declared  (data)" in text  # what the file declares wins

    report = json.loads(_status("--json", schema=["lakers"]))
    assert report["types"]["courtside_probe.0002_fill"] == "data"
    assert report["types"]["courtside_probe.0003_size"] == "hybrid"
    assert report["types"]["courtside_probe.0001_initial"] == "schema"


def test_the_history_api_gives_each_applied_migrations_type(probe, operator_client):
    probe.write("0002_fill", DATA)
    call_command("rollout", schemas=["lakers"], stdout=StringIO(), stderr=StringIO())

    rows = operator_client.get("/api/v1/schemas/lakers/history/").json()["results"]

    types = {r["name"]: r["type"] for r in rows if r["app_label"] == "courtside_probe"}
    assert types == {"0001_initial": "schema", "0002_fill": "data"}
