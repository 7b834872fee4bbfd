from django.urls import path

from tenants.api import views

app_name = "tenants_api"
urlpatterns = [
    path("plans/", views.PlanListView.as_view(), name="plan-list"),
    path("tenants/", views.TenantListCreateView.as_view(), name="tenant-list"),
    path("tenants/<str:schema_name>/", views.TenantDetailView.as_view(), name="tenant-detail"),
    path("tenants/<str:schema_name>/plan/", views.TenantPlanView.as_view(), name="tenant-plan"),
    path("tenants/<str:schema_name>/suspend/", views.TenantSuspendView.as_view(), name="tenant-suspend"),
    path("tenants/<str:schema_name>/reactivate/", views.TenantReactivateView.as_view(), name="tenant-reactivate"),
    path("tenants/<str:schema_name>/usage/", views.TenantUsageView.as_view(), name="tenant-usage"),
    path("tenants/<str:schema_name>/statements/<str:month>/", views.TenantStatementView.as_view(),
         name="tenant-statement"),
    path("tenants/<str:schema_name>/statements/<str:month>/statement.csv", views.TenantStatementCsvView.as_view(),
         name="tenant-statement-csv"),
]
