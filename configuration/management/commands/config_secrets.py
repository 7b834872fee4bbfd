"""Encryption at rest of configuration secrets: rotate to the newest key, show how values stand, make a key."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from configuration import sealing, services


class Command(BaseCommand):
    help = (
        "Configuration secrets are encrypted with the keys in COURTSIDE_SECRET_KEYS (comma-separated Fernet keys, "
        "newest first). `rotate` re-encrypts every stored secret with the newest key (and encrypts any secret "
        "still stored in clear); afterwards the older keys can be removed. `status` counts the stored values; "
        "`generate-key` prints a new key to put first in COURTSIDE_SECRET_KEYS."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=("rotate", "status", "generate-key"))

    def handle(self, *args, action, verbosity, **options):
        if action == "generate-key":
            self.stdout.write(sealing.generate_key())
            return
        problem = sealing.check_keys()
        if problem:
            raise CommandError(problem)
        try:
            if action == "status":
                counts = services.secrets_stored_counts()
                self._table(counts, rotated="on an older key", sealed="secret in clear")
                self._refuse_unreadable(counts)
                if counts.changed:
                    self.stdout.write(self.style.WARNING(
                        f"{counts.changed} stored value(s) need `manage.py config_secrets rotate`."))
                else:
                    self.stdout.write(self.style.SUCCESS("Every stored secret is encrypted with the newest key."))
                return
            bar = tqdm(total=None, desc="re-encrypting", unit="row", file=self.stderr, disable=verbosity < 1)

            def progress(done, total):
                bar.total = total
                bar.n = done
                bar.refresh()

            try:
                counts = services.secrets_reseal(progress=progress)
            finally:
                bar.close()
        except sealing.SealError as exc:
            raise CommandError(str(exc)) from exc
        self._table(counts, rotated="re-encrypted with the newest key", sealed="encrypted for the first time")
        self._refuse_unreadable(counts)
        self.stdout.write(self.style.SUCCESS(
            f"Rotated: {counts.changed} stored value(s) changed; the older keys can now be removed."))

    def _refuse_unreadable(self, counts):
        if counts.unreadable:
            raise CommandError(
                f"{counts.unreadable} stored value(s) cannot be decrypted with COURTSIDE_SECRET_KEYS: put back the "
                "key that encrypted them (after the newest) and run `manage.py config_secrets rotate` again."
            )

    def _table(self, counts, *, rotated, sealed):
        lines = [(rotated, counts.rotated), (sealed, counts.sealed), ("already on the newest key", counts.current),
                 ("not secret", counts.plain), ("no configured key opens it", counts.unreadable)]
        width = max(len(label) for label, _ in lines)
        for label, number in lines:
            self.stdout.write(f"  {label:<{width}}  {number:>8}")
