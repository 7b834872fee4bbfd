"""Operator API of the schemas app."""

from django.urls import path

from schemas.api import views

app_name = "schemas_api"
urlpatterns = [
    path("schemas/status/", views.StatusView.as_view(), name="status"),
    path("schemas/rollouts/", views.RolloutListView.as_view(), name="rollout-list"),
    path("schemas/rollouts/<int:pk>/", views.RolloutDetailView.as_view(), name="rollout-detail"),
    path("schemas/<str:schema_name>/history/", views.HistoryView.as_view(), name="history"),
]
