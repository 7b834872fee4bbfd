"""Players say whether their team is a demo roster place drawn by generate_season."""

from django.db import migrations, models


def mark_existing_rosters_generated(apps, schema_editor):
    # Until now the reference data gave no player a team: every team a player has was drawn by generate_season.
    Player = apps.get_model("league", "Player")
    Player.objects.filter(team__isnull=False).update(team_generated=True)


class Migration(migrations.Migration):

    dependencies = [
        ("league", "0004_data_generation"),
    ]

    operations = [
        migrations.AddField(
            model_name="player",
            name="team_generated",
            field=models.BooleanField(
                default=False, verbose_name="generated team",
                help_text="The team is a demo roster place drawn by generate_season, not one the reference data gives.",
            ),
        ),
        migrations.RunPython(mark_existing_rosters_generated, migrations.RunPython.noop),
    ]
