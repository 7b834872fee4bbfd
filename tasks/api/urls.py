"""Operator API of the tasks app."""

urlpatterns = []
