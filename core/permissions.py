"""Who may call an API view: the one definition of an operator."""

from rest_framework import permissions


class OperatorOnly(permissions.IsAdminUser):
    """Staff users of the public schema: Courtside's operators (operator APIs are only routed on the operator site)."""
