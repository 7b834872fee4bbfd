"""Tenant API of the configuration app (served on tenant domains): its own view only."""

from django.urls import path

from configuration.api import views

urlpatterns = [
    path("config/", views.TenantConfigView.as_view(), name="tenant-config"),
    path("config/overrides/", views.TenantOverrideListView.as_view(), name="tenant-config-overrides"),
]
