"""Operator API of the services app."""

urlpatterns = []
