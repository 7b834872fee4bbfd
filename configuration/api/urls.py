"""Operator API of the configuration app."""

from django.urls import path

from configuration.api import views

urlpatterns = [
    path("config/", views.EffectiveConfigView.as_view(), name="config-effective"),
    path("config/keys/<str:key>/", views.KeyView.as_view(), name="config-key"),
    path("config/entries/", views.EntryListView.as_view(), name="config-entries"),
    path("config/entries/<int:pk>/", views.EntryDetailView.as_view(), name="config-entry"),
    path("config/history/", views.ChangeListView.as_view(), name="config-history"),
    path("config/history/<int:pk>/rollback/", views.RollbackView.as_view(), name="config-rollback"),
    path("config/experiments/", views.ExperimentListView.as_view(), name="config-experiments"),
    path("config/experiments/<str:name>/", views.ExperimentDetailView.as_view(), name="config-experiment"),
    path("config/experiments/<str:name>/switch/", views.ExperimentSwitchView.as_view(),
         name="config-experiment-switch"),
]
