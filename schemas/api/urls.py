"""Operator API of the schemas app."""

urlpatterns = []
