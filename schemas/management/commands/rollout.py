"""Migrate every tenant schema in parallel, resumable, with a canary, a rollback and a dry run."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from core.errors import DomainError
from schemas.services import default_workers, parse_target, rollout_run


class Command(BaseCommand):
    help = ("Migrate tenant schemas to the latest migrations (or to named targets, which can roll back) in "
            "parallel worker processes, one transaction per schema. Failures are isolated and listed at the "
            "end; the exit status is non-zero if any schema failed.")

    def add_arguments(self, parser):
        parser.add_argument("targets", nargs="*", metavar="APP.MIGRATION",
                            help="Migrate (or roll back) to these migrations, e.g. league.0002 or league.zero. "
                                 "Default: every app's latest.")
        parser.add_argument("--schema", action="append", dest="schemas", metavar="SCHEMA",
                            help="Only this tenant schema (repeatable; comma-separated lists work too).")
        parser.add_argument("--workers", type=int, default=None,
                            help=f"Worker processes (default {default_workers()}: twice the CPU count, at most 8).")
        parser.add_argument("--canary", type=int, metavar="N",
                            help="Migrate only the first N schemas, one by one, and stop at the first failure; "
                                 "finish the rest later with --resume.")
        parser.add_argument("--resume", action="store_true",
                            help="Retry only the failed and pending schemas of the last unfinished rollout.")
        parser.add_argument("--dry-run", action="store_true", help="Print each schema's plan and change nothing.")
        parser.add_argument("--steps", type=int, metavar="N",
                            help="Roll each schema back by its last N applied migrations, as migrate_down(steps=N); "
                                 "positional arguments are then app labels to count in (default: every tenant app).")
        parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                            help="Schemas per batch of a data phase (default 100): each batch is a rollout row of "
                                 "its own, so a kill loses at most the batch under way.")
        parser.add_argument("--operator", default=None, help="Name recorded in the ledger (default: the OS user).")

    def handle(self, *args, **options):
        schemas = [s.strip() for value in options["schemas"] or [] for s in value.split(",") if s.strip()]
        if options["resume"] and (options["targets"] or schemas):
            raise CommandError("--resume reuses the last rollout's targets and schemas; give neither.")
        verbosity = options["verbosity"]
        if options["steps"] is not None:
            return self._steps_back(options, schemas, verbosity)
        bar = None

        def progress(result):
            if bar is not None:
                bar.update(1)
                if result["status"] == "failed":
                    bar.write(self.style.ERROR(f"{result['schema']}: FAILED {result['error'].splitlines()[0]}"),
                              file=self.stderr._out)

        try:
            targets = [parse_target(t) for t in options["targets"]] or None
            if not options["dry_run"]:
                # The plan pass is cheap; run it first only to size the progress bar.
                preview = rollout_run(schemas=schemas or None, targets=targets, resume=options["resume"],
                                      dry_run=True)
                todo = sum(1 for plan in preview.plans.values() if plan)
                if options["canary"]:
                    todo = min(todo, options["canary"])
                bar = tqdm(total=todo, unit="schema", disable=verbosity < 1 or todo == 0, file=self.stderr._out)
            if not options["dry_run"]:
                # In phases, each data migration after the schema migrations before it, in batches.
                from schemas.data_migrations import DEFAULT_BATCH, rollout_phased

                batch = DEFAULT_BATCH if options["batch_size"] is None else options["batch_size"]
                phased = rollout_phased(schemas=schemas or None, targets=targets, canary=options["canary"],
                                        resume=options["resume"], batch_size=batch,
                                        workers=options["workers"], by=options["operator"], progress=progress,
                                        phase_done=self._phase_line)
                result = None
            else:
                result = rollout_run(schemas=schemas or None, targets=targets, workers=options["workers"],
                                     canary=options["canary"], resume=options["resume"],
                                     dry_run=options["dry_run"], by=options["operator"], progress=progress)
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        except DomainError as error:
            raise CommandError(error.message) from error
        finally:
            if bar is not None:
                bar.close()

        if options["dry_run"]:
            self._print_plans(result, verbosity)
            return
        if result is None:
            if len(phased.phases) == 1 and not phased.canary_left:
                self._print_summary(phased.phases[0].result, verbosity)
                return
            if phased.failed:
                raise CommandError(f"{len(phased.failed)} schema(s) failed: {', '.join(sorted(phased.failed))}. "
                                   "Fix the cause, then run `rollout` again: it does only what is left.")
            if phased.canary_left:
                self.stdout.write(self.style.WARNING(
                    f"Canary done in {len(phased.phases)} phase(s); {phased.canary_left} schema(s) left: "
                    "run `rollout --resume` for the rest."))
                return
            self.stdout.write(self.style.SUCCESS(f"Done in {len(phased.phases)} phase(s)."))
            return
        self._print_summary(result, verbosity)

    def _phase_line(self, phase):
        failed = phase.result.failed
        errors = "".join(f"\n  FAILED {s}: {r['error']}" for s, r in sorted(failed.items()))
        line = f"{phase.summary}{errors}"
        self.stdout.write(self.style.ERROR(line) if failed else line)

    def _steps_back(self, options, schemas, verbosity):
        from schemas.rollouts import rollout_steps_back

        if options["resume"] or options["canary"]:
            raise CommandError("--steps rolls back; it takes neither --resume nor --canary.")
        if any("." in t or ":" in t for t in options["targets"]):
            raise CommandError("With --steps, give app labels (e.g. league), not app.migration targets.")
        try:
            results = rollout_steps_back(steps=options["steps"], apps=options["targets"] or None,
                                         schemas=schemas or None, dry_run=options["dry_run"],
                                         workers=options["workers"], by=options["operator"])
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        except DomainError as error:
            raise CommandError(error.message) from error
        for result in results:
            if options["dry_run"]:
                self._print_plans(result, verbosity)
            else:
                self._print_summary(result, verbosity)

    def _print_plans(self, result, verbosity):
        for schema, plan in result.plans.items():
            if not plan:
                if verbosity >= 2:
                    self.stdout.write(f"{schema}: nothing to do")
                continue
            self.stdout.write(self.style.MIGRATE_HEADING(f"{schema}:"))
            for (app, name), backwards in plan:
                self.stdout.write(f"  {'Unapply' if backwards else 'Apply'} {app}.{name}")
        todo = sum(1 for plan in result.plans.values() if plan)
        self.stdout.write(f"Dry run: {todo} schema(s) would change, {result.skipped} already at the target. "
                          "Nothing was changed.")

    def _print_summary(self, result, verbosity):
        rollout = result.rollout
        ok = [s for s, r in result.results.items() if r["status"] == "ok"]
        failed = result.failed
        if verbosity >= 2:
            for schema in sorted(ok):
                self.stdout.write(f"{schema}: {', '.join(result.results[schema]['applied'])}")
        for schema, outcome in sorted(failed.items()):
            self.stdout.write(self.style.ERROR(f"FAILED {schema}: {outcome['error']}"))
        left = sum(1 for r in rollout.results.values() if r["status"] == "pending")
        summary = (f"Rollout #{rollout.pk}: {len(ok)} schema(s) migrated, {len(failed)} failed, "
                   f"{result.skipped} already up to date, {left} not attempted.")
        if failed:
            raise CommandError(f"{summary} Fix the cause, then run `rollout --resume`.")
        if result.stopped_early:
            self.stdout.write(self.style.WARNING(f"{summary} Canary done; run `rollout --resume` for the rest."))
            return
        self.stdout.write(self.style.SUCCESS(summary))
