"""The admin's form to submit an allow-listed task: the operator for any tenant (or none), a tenant admin for its
own tenant only. The form collects input; tasks.actions.task_submit judges it (the task's JSON Schema through
jsonschema in tasks.registry, scope, priority, the tenant's plan limits) and its refusals become form errors."""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from core.admin import ServiceErrorFormMixin
from tasks import actions, registry
from tasks.models import Priority
from tenants import selectors as tenant_selectors

# The arguments box takes JSON of at most this many characters (a task's arguments are small).
MAX_ARGUMENTS_CHARS = 20_000


class TaskSubmitForm(ServiceErrorFormMixin, forms.Form):
    name = forms.ChoiceField(label="Task", help_text="One of the allow-listed tasks (see their arguments below).")
    args = forms.JSONField(
        label="Arguments (JSON object)", required=False, initial=dict, max_length=MAX_ARGUMENTS_CHARS,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80, "spellcheck": "false"}),
        help_text="Checked against the task's JSON Schema; {} for a task without arguments.",
    )
    priority = forms.TypedChoiceField(
        label="Priority", coerce=int, required=False, empty_value=None,
        choices=[("", "The task's default"), *[(p.value, p.label) for p in Priority]],
    )

    def __init__(self, *args, operator: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.specs = registry.specs(for_tenant=None if operator else True)
        self.fields["name"].choices = [(spec.name, spec.name) for spec in self.specs]
        if operator:
            self.fields["tenant"] = forms.ModelChoiceField(
                queryset=tenant_selectors.tenant_list(), required=False, to_field_name="schema_name",
                label="Tenant", help_text="Empty: the operator's own (public) run, for tasks that allow it.")

    def schemas(self) -> list[dict]:
        return [{"name": spec.name, "description": spec.description, "scope": spec.scope,
                 "schema": json.dumps(spec.schema, indent=2, sort_keys=True)} for spec in self.specs]


class TaskSubmitViewMixin:
    """TaskRunAdmin's `submit/` page (its `operator` flag says whose admin this is)."""

    def submit_view(self, request):
        if not self.may_act(request):
            raise PermissionDenied
        operator = self.operator
        own_tenant = None if operator else getattr(request, "tenant", None)
        form = TaskSubmitForm(request.POST or None, operator=operator)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            with form.service_errors():
                run = actions.task_submit(
                    name=data["name"], arguments=data["args"] if data["args"] is not None else {},
                    tenant=data.get("tenant") if operator else own_tenant, priority=data["priority"],
                    submitted_by=request.user.get_username(), by_operator=operator)
                self.message_user(request, f"Submitted {run.name} as run {run.pk}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse(f"{self.admin_site.name}:tasks_taskrun_change", args=[run.pk]))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Submit a task",
                   "form": form, "operator": operator}
        return TemplateResponse(request, "admin/tasks/taskrun/submit.html", context)
