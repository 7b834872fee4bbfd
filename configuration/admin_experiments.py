"""Operator admin: the experiments page (each experiment's split as a table and a chart) and its kill switch.

Registered by configuration/admin.py; thin: the split comes from
selectors.experiment_summaries, the switch from services.experiment_switch.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from configuration import selectors, services
from configuration.conf import PUBLIC, config
from configuration.models import ExperimentExposure
from core.admin import operator_site
from core.charts import bar_chart


@admin.register(ExperimentExposure, site=operator_site)
class ExperimentAdmin(admin.ModelAdmin):
    """Experiments: weights, exposures counted so far, the split, and Kill / Resume."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # counts are facts; a removed experiment keeps its history

    def get_urls(self):
        return [
            path("<str:name>/switch/", self.admin_site.admin_view(self.switch_view),
                 name="configuration_experiment_switch"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        experiments = selectors.experiment_summaries(specs=config.get("experiments", default={}, tenant=PUBLIC))
        for experiment in experiments:
            experiment["chart"] = bar_chart(
                [(variant["name"], variant["exposures"]) for variant in experiment["variants"]],
                title=f"{experiment['name']}: exposures per variant", width=480, height=160, label_every=1,
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Experiments",
            "opts": self.model._meta,
            "experiments": experiments,
            "can_switch": request.user.has_perm("configuration.change_configentry"),
        }
        return TemplateResponse(request, "admin/configuration/experiments.html", context)

    def switch_view(self, request, name):
        back = reverse(f"{self.admin_site.name}:configuration_experimentexposure_changelist")
        if request.method != "POST":
            return HttpResponseRedirect(back)
        if not request.user.has_perm("configuration.change_configentry"):
            messages.error(request, "You may not change configuration entries.")
            return HttpResponseRedirect(back)
        enabled = request.POST.get("enabled") == "true"
        try:
            services.experiment_switch(name=name, enabled=enabled, changed_by=services.actor(request.user),
                                       source="admin")
        except ValidationError as exc:
            messages.error(request, f"Refused: {'; '.join(exc.messages)}")
            return HttpResponseRedirect(back)
        messages.success(request, f"{name} {'runs' if enabled else 'is off: every tenant gets the control'}.")
        return HttpResponseRedirect(back)
