"""Tenant API of the tasks app (served on tenant domains): the tenant's own runs only."""

from django.urls import path

from tasks.api import views

app_name = "tasks_tenant_api"
urlpatterns = [
    path("tasks/runs/", views.TenantTaskRunListView.as_view(), name="run-list"),
    path("tasks/runs/batch/", views.TenantTaskRunBatchView.as_view(), name="run-batch"),
    path("tasks/runs/<uuid:run_id>/", views.TenantTaskRunDetailView.as_view(), name="run-detail"),
    path("tasks/runs/<uuid:run_id>/cancel/", views.TenantTaskRunCancelView.as_view(), name="run-cancel"),
    path("tasks/catalogue/", views.TenantTaskCatalogueView.as_view(), name="catalogue"),
    path("tasks/queue/", views.TenantQueueDepthView.as_view(), name="queue"),
]
