"""Tenant API of the tasks app (served on tenant domains)."""

urlpatterns = []
