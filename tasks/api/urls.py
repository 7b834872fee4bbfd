"""Operator API of the tasks app."""

from django.urls import path

from tasks.api import views

app_name = "tasks_api"
urlpatterns = [
    path("tasks/runs/", views.TaskRunListView.as_view(), name="run-list"),
    path("tasks/runs/batch/", views.TaskRunBatchView.as_view(), name="run-batch"),
    path("tasks/runs/<uuid:run_id>/", views.TaskRunDetailView.as_view(), name="run-detail"),
    path("tasks/runs/<uuid:run_id>/cancel/", views.TaskRunCancelView.as_view(), name="run-cancel"),
    path("tasks/catalogue/", views.TaskCatalogueView.as_view(), name="catalogue"),
    path("tasks/queue/", views.QueueDepthView.as_view(), name="queue"),
    path("tasks/workers/", views.WorkerListView.as_view(), name="workers"),
]
