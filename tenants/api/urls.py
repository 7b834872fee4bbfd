from django.urls import path

from tenants.api import views

app_name = "tenants_api"
urlpatterns = [
    path("tenants/", views.TenantListCreateView.as_view(), name="tenant-list"),
    path("tenants/<str:schema_name>/", views.TenantDetailView.as_view(), name="tenant-detail"),
]
