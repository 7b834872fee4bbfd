"""Operator admin: the ledger (each schema's history), rollouts, and the schemas × apps matrix."""

from functools import reduce
from operator import or_
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Q, Subquery
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django_tenants.utils import get_public_schema_name, get_tenant_model

from core.admin import ReadOnlyAdminMixin, operator_site
from schemas.matrix import matrix_page
from schemas.models import MigrationRecord, Rollout
from schemas.selectors import ledger_summary_cached
from schemas.spares import spare_counts, spare_prefixes


def _spare_q() -> Q | None:
    prefixes = spare_prefixes()
    return reduce(or_, (Q(schema_name__startswith=prefix) for prefix in prefixes)) if prefixes else None


def _standing_q() -> Q:
    """Rows of the schemas someone has today: public and every tenant's (not spare ones, not deleted tenants')."""
    tenants = get_tenant_model().objects.values("schema_name")
    return Q(schema_name=get_public_schema_name()) | Q(schema_name__in=Subquery(tenants))


class SchemaFilter(admin.SimpleListFilter):
    """One schema's history (`?schema_name=`, as the matrix links it); offered: the schemas of the kind shown."""

    title = "schema"
    parameter_name = "schema_name"

    def lookups(self, request, model_admin):
        names = MigrationRecord.objects.order_by("schema_name").values_list("schema_name", flat=True).distinct()
        names = SpareSchemaFilter.of_kind(names, request.GET.get(SpareSchemaFilter.parameter_name))
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        return queryset.filter(schema_name=self.value()) if self.value() else queryset


class SpareSchemaFilter(admin.SimpleListFilter):
    """Spare schemas (the sign-up pool) and deleted tenants' history stay out of the list unless asked for.

    Asked for by name, or all of a kind at once, they are there: a deleted tenant's rows are its history.
    """

    title = "spare schemas"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [("spare", "Only spare schemas"), ("deleted", "Only deleted tenants' schemas"),
                ("all", "Tenants, public, spare and deleted")]

    def choices(self, changelist):
        choices = list(super().choices(changelist))
        choices[0]["display"] = "Tenants and public"
        return choices

    @staticmethod
    def of_kind(queryset, kind: str | None):
        if kind == "all":
            return queryset
        spare = _spare_q()
        if kind == "spare":
            return queryset.filter(spare) if spare is not None else queryset.none()
        if kind == "deleted":
            others = queryset.exclude(_standing_q())
            return others.exclude(spare) if spare is not None else others
        return queryset.filter(_standing_q())

    def queryset(self, request, queryset):
        if request.GET.get(SchemaFilter.parameter_name) and self.value() is None:
            return queryset  # a schema asked for by name is shown, whatever its kind
        return self.of_kind(queryset, self.value())


@admin.register(MigrationRecord, site=operator_site)
class MigrationRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only history: the ledger is written by migrations, never by hand."""

    list_display = ("schema_name", "app_label", "name", "migration_type", "outcome", "applied_at", "applied_by",
                    "duration_ms", "undone_at", "short_checksum")
    list_filter = ("outcome", "app_label", SchemaFilter, SpareSchemaFilter)
    search_fields = ("schema_name", "app_label", "name")
    date_hierarchy = "applied_at"
    change_list_template = "admin/schemas/migrationrecord/change_list.html"

    _types: dict = {}

    @admin.display(description="type")
    def migration_type(self, obj):
        """schema, data or hybrid, as the file on disk says (— when the file is gone)."""
        return self._types.get((obj.app_label, obj.name), "—")

    def short_checksum(self, obj):
        return obj.checksum[:12]

    short_checksum.short_description = "SHA-256"


    def get_urls(self):
        return [
            path("summary/", self.admin_site.admin_view(self.summary_view), name="schemas_migration_summary"),
            path("matrix/", self.admin_site.admin_view(self.matrix_view), name="schemas_migration_matrix"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        from schemas.selectors import migration_types

        self._types = migration_types()  # once per page, not per row
        return super().changelist_view(request, {**(extra_context or {}), "spare_counts": spare_counts()})

    def summary_view(self, request):
        """Migrations across every tenant schema at a glance, from the ledger in a few aggregate statements:
        how many schemas are current, each migration pending in how many, each changed one in how many."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        summary = ledger_summary_cached()
        changelist = reverse(f"{self.admin_site.name}:schemas_migrationrecord_changelist")
        matrix = reverse(f"{self.admin_site.name}:schemas_migration_matrix")
        pending = [{**p, "url": f"{matrix}?{urlencode({'problems': '1'})}"} for p in summary["pending"]]
        changed = [{**c, "url": f"{changelist}?{urlencode({'app_label__exact': c['app'], 'q': c['name']})}"}
                   for c in summary["changed"]]
        context = {
            **self.admin_site.each_context(request), "title": "Migrations across schemas", "opts": self.model._meta,
            "summary": summary, "pending": pending, "changed": changed, "matrix_url": matrix,
            "changelist_url": changelist, "spare_counts": spare_counts(),
        }
        return TemplateResponse(request, "admin/schemas/summary.html", context)

    matrix_page_size = 100

    def matrix_view(self, request):
        """Schemas × apps, each cell the latest applied migration and its status."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        problems_only = request.GET.get("problems") == "1"
        search = request.GET.get("q", "").strip()[:63]  # a schema name is at most 63 characters
        # A thousand schemas make a page nobody reads: a hundred rows at a time, searchable by name; only the
        # page's schemas are read (schemas/matrix.py).
        matrix = matrix_page(number=request.GET.get("page"), search=search, problems_only=problems_only,
                             page_size=self.matrix_page_size)
        report, page = matrix.report, matrix.page
        apps = sorted(report.latest)
        history_url = reverse(f"{self.admin_site.name}:schemas_migrationrecord_changelist")
        rows = []
        for schema in report.schemas:
            cells = []
            for app in apps:
                status = schema.app_status(app, report.latest[app])
                cells.append({"app": app, "name": schema.latest.get(app) or "—", "status": status,
                              "css": status.replace(" ", "-"), "type": matrix.type_of(app, schema.latest.get(app))})
            rows.append({"schema": schema.schema, "cells": cells, "problems": schema.problems,
                         "history": f"{history_url}?schema_name={schema.schema}",
                         "details": [f"pending {a}.{n} ({matrix.type_of(a, n) or '?'})" for a, n in schema.pending]
                         + [f"changed {a}.{n}" for a, n in schema.changed]
                         + [f"file gone {a}.{n}" for a, n in schema.gone]
                         + [f"missing {t}" for t in schema.missing_tables + schema.missing_columns]})
        keep = {k: v for k, v in (("problems", "1" if problems_only else ""), ("q", search)) if v}
        context = {
            **self.admin_site.each_context(request),
            "title": "Migrations by schema",
            "opts": self.model._meta,
            "apps": apps,
            "latest": [{"name": report.latest[app], "type": matrix.type_of(app, report.latest[app])} for app in apps],
            "rows": rows,
            "page": page,
            "query": urlencode(keep),
            "search": search,
            "problems_only": problems_only,
            "total": matrix.total,
            "problem_count": matrix.problem_count,
            "changed_files": matrix.changed_files,
            "gone_files": matrix.gone_files,
            "seconds": matrix.seconds,
            "spare_counts": report.spares,
        }
        return TemplateResponse(request, "admin/schemas/matrix.html", context)


@admin.register(Rollout, site=operator_site)
class RolloutAdmin(admin.ModelAdmin):
    """Rollouts and their per-schema progress (started with `manage.py rollout`)."""

    list_display = ("id", "status", "progress", "phase_label", "backwards", "started_at", "finished_at", "started_by")
    list_filter = ("status", "backwards")
    readonly_fields = ("targets", "backwards", "status", "phase_label", "started_at", "finished_at", "started_by",
                       "total", "done", "failures")
    exclude = ("results", "phase")

    change_list_template = "admin/schemas/rollout/change_list.html"
    change_form_template = "admin/schemas/rollout/change_form.html"

    def progress(self, obj):
        return f"{obj.done}/{obj.total}"

    @admin.display(description="phase")
    def phase_label(self, obj):
        """Which phase of a phased rollout this row is (schemas/data_migrations.py); "—" for a plain one."""
        phase = obj.phase or {}
        if not phase.get("kind"):
            return "—"
        if phase["kind"] != "data":
            return phase["kind"]
        batch = f", batch {phase.get('batch', 1)}/{phase.get('batches', 1)}"
        return f"data {phase.get('migration', '')} ({phase.get('type') or 'data'}){batch}"

    def get_urls(self):
        return [
            path("start/", self.admin_site.admin_view(self.start_view), name="schemas_rollout_start"),
            path("<int:object_id>/undo/", self.admin_site.admin_view(self.undo_view), name="schemas_rollout_undo"),
            *super().get_urls(),
        ]

    def start_view(self, request):
        """The rollout form: "Dry run" shows the plan (stages, migrations, types, non-atomic ones marked) and
        changes nothing; "Start" queues the staged rollout as a background task, its progress shown below."""
        from django.contrib import messages
        from django.shortcuts import redirect

        from schemas.forms import RolloutForm
        from schemas.rollouts import rollout_plan
        from schemas.services import parse_target
        from tasks.actions import task_submit

        if not request.user.is_superuser:
            raise PermissionDenied
        form, plan = RolloutForm(request.POST or None), None
        if request.method == "POST" and form.is_valid():
            with form.service_errors():
                targets = [parse_target(t) for t in form.cleaned_data["targets"].split()] or None
                if request.POST.get("action") == "plan":
                    plan = rollout_plan(targets=targets, **form.service_arguments())
                else:
                    rollout_plan(targets=targets, **form.service_arguments())  # refused here, not in the worker
                    who = request.user.get_username()
                    run = task_submit(name="schemas.rollout", arguments=form.task_arguments(who), submitted_by=who)
                    messages.success(request, f"Rollout queued as task run #{run.pk}; progress shows below.")
                    return redirect(f"{self.admin_site.name}:schemas_rollout_changelist")
        context = {**self.admin_site.each_context(request), "title": "Start a rollout", "form": form,
                   "plan": plan, "opts": self.model._meta}
        return TemplateResponse(request, "admin/schemas/rollout/start.html", context)

    def undo_view(self, request, object_id):
        """POST: reverse in one schema what this rollout applied there (a rollback rollout of its own)."""
        from django.contrib import messages
        from django.core.exceptions import ValidationError
        from django.shortcuts import redirect

        from core.errors import DomainError
        from schemas.rollouts import rollout_undo_schema

        if not request.user.is_superuser:
            raise PermissionDenied
        back = redirect(f"{self.admin_site.name}:schemas_rollout_change", object_id)
        if request.method != "POST":
            return back
        schema = request.POST.get("schema", "")[:63]
        try:
            result = rollout_undo_schema(rollout_id=int(object_id), schema=schema, by=request.user.get_username())
        except (ValidationError, DomainError) as error:
            messages.error(request, "; ".join(getattr(error, "messages", None) or [str(error)]))
            return back
        if result.failed:
            messages.error(request, f"Undo in {schema} failed: {result.failed[schema]['error']}")
        else:
            undone = ", ".join(label.lstrip("-") for label in result.results.get(schema, {}).get("applied", []))
            messages.success(request, f"Undone in {schema}: {undone or 'nothing left to undo'} "
                                      f"(rollout #{result.rollout.pk}).")
        return back

    def change_view(self, request, object_id, form_url="", extra_context=None):
        rollout = self.get_object(request, object_id)
        rows = []
        if rollout is not None:
            rows = [{"schema": s, "status": r.get("status", ""), "applied": ", ".join(r.get("applied") or []),
                     "error": r.get("error", ""),
                     "undoable": r.get("status") == "ok" and any(not a.startswith("-") for a in r.get("applied") or [])}
                    for s, r in sorted(rollout.results.items())[:1000]]
        extra = {**(extra_context or {}), "schema_rows": rows,
                 "schema_count": len(rollout.results) if rollout else 0}
        return super().change_view(request, object_id, form_url, extra)

    def failures(self, obj):
        failed = [(s, r.get("error", "")) for s, r in sorted(obj.results.items()) if r.get("status") == "failed"]
        if not failed:
            return "none"
        return format_html("<br>".join(["{}: {}"] * len(failed)), *[x for pair in failed for x in pair])

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
