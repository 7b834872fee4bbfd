"""The operator admin's rollout form: what the operator types, turned into `schemas.rollouts` arguments."""

from django import forms

from core.admin import ServiceErrorFormMixin
from schemas.rollouts import MAX_CANARY, MAX_SCHEMAS_NAMED


class RolloutForm(ServiceErrorFormMixin, forms.Form):
    targets = forms.CharField(required=False, max_length=4000,
                              help_text="Optional: app.migration targets, space-separated (a target below the "
                                        "current state rolls back). Empty: every app's latest.")
    schemas = forms.CharField(required=False, max_length=MAX_SCHEMAS_NAMED * 64,
                              help_text="Optional: tenant schemas, space-separated. Empty: every tenant.")
    canary = forms.IntegerField(required=False, min_value=1, max_value=MAX_CANARY,
                                help_text="Canary stage: this many schemas first, one by one, halting at the first "
                                          "failure.")
    canary_percent = forms.IntegerField(required=False, min_value=1, max_value=100, label="Canary %",
                                        help_text="Or a percentage of the schemas to change (rounded up).")
    stop_after_canary = forms.BooleanField(required=False, help_text="Stop after the canary; resume for the rest.")
    parallel = forms.BooleanField(required=False, label="Rest in parallel",
                                  help_text="Run the rest in parallel, failures isolated, instead of one by one "
                                            "halting at the first failure.")
    resume = forms.BooleanField(required=False, help_text="Go on with the failed and pending schemas of the "
                                "last unfinished rollout (its targets).")

    def clean(self):
        data = super().clean()
        if data.get("canary") and data.get("canary_percent"):
            self.add_error("canary_percent", "Give a canary count or a percentage, not both.")
        if data.get("resume") and (data.get("targets", "").split() or data.get("schemas", "").split()):
            self.add_error("resume", "Resume reuses the last rollout's targets and schemas; give neither.")
        elif data.get("resume") and (data.get("canary") or data.get("canary_percent")):
            self.add_error("resume", "Resume goes on with what the last rollout left; give no canary.")
        return data

    def service_arguments(self) -> dict:
        """Keyword arguments of rollout_plan (targets parsed by the caller)."""
        data = self.cleaned_data
        return {"schemas": data["schemas"].split() or None, "canary": data.get("canary"),
                "percent": data.get("canary_percent"), "resume": data["resume"]}

    def task_arguments(self, operator: str) -> dict:
        """The `schemas.rollout` task's arguments: only what differs from the defaults."""
        data, arguments = self.cleaned_data, {"operator": operator}
        for key in ("targets", "schemas"):
            if data[key].split():
                arguments[key] = data[key].split()
        for key in ("canary", "canary_percent"):
            if data.get(key):
                arguments[key] = data[key]
        for key in ("resume", "stop_after_canary", "parallel"):
            if data[key]:
                arguments[key] = True
        return arguments
