from django import forms
from django.contrib import admin

from core.admin import tenant_site
from league import services
from league.models import Game, Player, PlayerGameStat, StatModel, Team
from tenants.admin import RowQuotaAddMixin


@admin.register(Team, site=tenant_site)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("full_name", "abbreviation", "city", "year_founded")
    search_fields = ("full_name", "abbreviation", "city")


@admin.register(Player, site=tenant_site)
class PlayerAdmin(admin.ModelAdmin):
    list_display = ("full_name", "team", "team_generated", "is_active", "nba_id")
    list_filter = ("is_active", "team_generated", "team")
    search_fields = ("full_name",)
    list_select_related = ("team",)


class StatLineInline(admin.TabularInline):
    model = PlayerGameStat
    extra = 0
    autocomplete_fields = ("player",)


@admin.register(Game, site=tenant_site)
class GameAdmin(admin.ModelAdmin):
    list_display = ("date", "season", "away_team", "home_team", "away_score", "home_score")
    list_filter = ("season",)
    date_hierarchy = "date"
    list_select_related = ("home_team", "away_team")


@admin.register(PlayerGameStat, site=tenant_site)
class PlayerGameStatAdmin(admin.ModelAdmin):
    list_display = ("player", "game", "team", "minutes", "points", "assists")
    list_select_related = ("player", "game__home_team", "game__away_team", "team")
    autocomplete_fields = ("player",)
    raw_id_fields = ("game",)


class StatModelForm(forms.ModelForm):
    class Meta:
        model = StatModel
        fields = ["name", "target", "window_games"]


@admin.register(StatModel, site=tenant_site)
class StatModelAdmin(RowQuotaAddMixin, admin.ModelAdmin):
    """Saved projection models, within the plan's quota of saved models (see RowQuotaAddMixin)."""

    list_display = ("name", "target", "window_games", "status", "trained_at")
    list_filter = ("status", "target")
    search_fields = ("name",)
    readonly_fields = ("status", "metrics", "trained_at", "created_at")
    add_form_class = StatModelForm
    quota = "saved_models"  # tenants.quotas

    def create_row(self, request, form):
        return services.stat_model_create(**form.cleaned_data)
