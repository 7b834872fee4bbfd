"""Tenant API of the configuration app (served on tenant domains)."""

urlpatterns = []
