"""Operator API of the configuration app."""

urlpatterns = []
