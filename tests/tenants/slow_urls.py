"""Tenant URLs plus a deliberately slow API view, for concurrency tests only."""

import time

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from backoffice.urls_tenant import urlpatterns as tenant_urlpatterns


class SlowView(APIView):
    def get(self, request):
        time.sleep(float(request.query_params.get("seconds", "1")))
        return Response({"slept": True})


urlpatterns = [path("slow/", SlowView.as_view()), *tenant_urlpatterns]
