from django.urls import path

from league.api import views

app_name = "league_api"
urlpatterns = [
    path("teams/", views.TeamListView.as_view(), name="team-list"),
    path("teams/<int:pk>/", views.TeamDetailView.as_view(), name="team-detail"),
    path("players/", views.PlayerListView.as_view(), name="player-list"),
    path("players/<int:pk>/", views.PlayerDetailView.as_view(), name="player-detail"),
    path("players/<int:pk>/averages/", views.PlayerSeasonAveragesView.as_view(), name="player-averages"),
    path("games/", views.GameListView.as_view(), name="game-list"),
    path("models/", views.StatModelListCreateView.as_view(), name="statmodel-list"),
    path("games/<int:pk>/", views.GameDetailView.as_view(), name="game-detail"),
]
