"""The tenant admin's league pages: read-only detail pages for data the reference load and the season
generator write (players, games, stat lines), the team's editable facts with its season below, standings.

Thin: the figures come from league.selectors through league.admin.pages.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.template.response import TemplateResponse
from django.urls import path

from core.admin import tenant_site
from league import selectors, services
from league.admin import pages
from league.models import Game, Player, PlayerGameStat, StatModel, Team
from tenants.admin import RowQuotaAddMixin


class ReadOnlyAdminMixin:
    """League data not meant to be edited by hand: the loader and the generator write it, the admin reads it."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
    # Viewing keeps Django's rule: whoever holds the view or the change permission reads it.


@admin.register(Team, site=tenant_site)
class TeamAdmin(admin.ModelAdmin):
    """A team's facts stay editable (names, city); its page shows the season: record, roster, schedule."""

    list_display = ("full_name", "abbreviation", "city", "year_founded")
    search_fields = ("full_name", "abbreviation", "city")
    change_form_template = "admin/league/team/change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        team = self.get_object(request, object_id)
        extra = pages.team_page(team=team, season=pages.season_of(request)) if team is not None else {}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})


class TeamFilter(admin.SimpleListFilter):
    """Games of one team, at home or away."""

    title = "team"
    parameter_name = "team"

    def lookups(self, request, model_admin):
        return [(str(team.pk), team.abbreviation) for team in selectors.team_list().order_by("abbreviation")]

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(Q(home_team_id=int(value)) | Q(away_team_id=int(value)))
        return queryset


@admin.register(Player, site=tenant_site)
class PlayerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("full_name", "team", "is_active", "team_generated")
    list_filter = ("is_active", "team_generated", "team")
    search_fields = ("full_name",)
    list_select_related = ("team",)
    list_per_page = 50

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """A player's page: season averages, the last 10 games, the points-per-game trend, the projection."""
        if request.method != "GET":
            raise PermissionDenied  # read-only: nothing to post
        player = self.get_object(request, object_id)
        if player is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, player):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts, "title": player.full_name, "subtitle": None, "original": player,
            "has_view_permission": True,
            **pages.player_page(player=player, season=pages.season_of(request), color=pages.brand_color(request)),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/league/player/detail.html", context)


class StatLineInline(admin.TabularInline):
    model = PlayerGameStat
    extra = 0
    fields = ("player", "team", "minutes", "points", "assists", "steals", "blocks", "turnovers")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Game, site=tenant_site)
class GameAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("date", "season", "away_team", "away_score", "home_team", "home_score")
    list_filter = (TeamFilter, "season", ("date", admin.DateFieldListFilter))
    date_hierarchy = "date"
    list_select_related = ("home_team", "away_team")
    inlines = [StatLineInline]
    list_per_page = 50

    def get_urls(self):
        view = self.admin_site.admin_view(self.standings_view)
        return [path("standings/", view, name="league_game_standings"), *super().get_urls()]

    def standings_view(self, request):
        """Wins, losses and win % of each team in a season: one aggregate statement (league.selectors.standings)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        season = pages.season_of(request)
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": f"Standings {season}",
                   "season": season, "standings": selectors.standings(season=season),
                   "seasons": list(Game.objects.order_by("-season").values_list("season", flat=True).distinct())}
        return TemplateResponse(request, "admin/league/standings.html", context)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"standings_url": "standings/", **(extra_context or {})})


@admin.register(PlayerGameStat, site=tenant_site)
class PlayerGameStatAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("player", "game", "team", "minutes", "points", "assists")
    list_select_related = ("player", "game__home_team", "game__away_team", "team")
    search_fields = ("player__full_name",)
    list_per_page = 50


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
