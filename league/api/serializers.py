from rest_framework import serializers

from league.models import Game, Player, StatModel, Team


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "nba_id", "abbreviation", "full_name", "nickname", "city", "state", "year_founded"]


class PlayerSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(read_only=True, slug_field="abbreviation", allow_null=True,
                                        help_text="Null for a player without a team.")

    class Meta:
        model = Player
        fields = ["id", "nba_id", "first_name", "last_name", "full_name", "is_active", "team", "team_generated"]


class GameSerializer(serializers.ModelSerializer):
    home_team = serializers.SlugRelatedField(read_only=True, slug_field="abbreviation")
    away_team = serializers.SlugRelatedField(read_only=True, slug_field="abbreviation")

    class Meta:
        model = Game
        fields = ["id", "season", "date", "home_team", "away_team", "home_score", "away_score"]


class SeasonAverageSerializer(serializers.Serializer):
    season = serializers.CharField()
    games = serializers.IntegerField()
    ppg = serializers.FloatField()
    rpg = serializers.FloatField()
    apg = serializers.FloatField()
    spg = serializers.FloatField()
    bpg = serializers.FloatField()
    tpg = serializers.FloatField(help_text="Turnovers per game.")
    fg_pct = serializers.FloatField(allow_null=True)
    score = serializers.FloatField(allow_null=True, help_text="The player score of the scoring in force (see scoring).")


class ScoringSerializer(serializers.Serializer):
    model = serializers.ChoiceField(choices=["classic", "new"], help_text=(
        "classic: weights x per-game figures; new: the same per 36 minutes (where flags.new_scoring allows it)."))
    weights = serializers.DictField(child=serializers.FloatField(), help_text=(
        "Weight of each per-game statistic (scoring.weights); turnovers are subtracted."))


class PlayerAveragesSerializer(serializers.Serializer):
    player = serializers.CharField()
    scoring = ScoringSerializer()
    seasons = SeasonAverageSerializer(many=True)


class AveragesFilterSerializer(serializers.Serializer):
    season = serializers.RegexField(
        r"^(\d{4}-\d{2}|all)$", required=False,
        help_text="Like 2025-26, or all; without it, the reports.default_season setting.",
    )


class PlayerSeasonAveragesSerializer(serializers.Serializer):
    """The shape of players/<id>/averages/ (documentation only: the view builds the object)."""

    player = serializers.CharField()
    seasons = SeasonAverageSerializer(many=True)


class PlayerFilterSerializer(serializers.Serializer):
    team = serializers.IntegerField(required=False, min_value=1)
    search = serializers.CharField(required=False, max_length=100)


class GameFilterSerializer(serializers.Serializer):
    season = serializers.RegexField(r"^\d{4}-\d{2}$", required=False)
    team = serializers.IntegerField(required=False, min_value=1)


class StatModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = StatModel
        fields = ["id", "name", "target", "window_games", "status", "metrics", "trained_at", "created_at"]
        read_only_fields = ["id", "status", "metrics", "trained_at", "created_at"]
