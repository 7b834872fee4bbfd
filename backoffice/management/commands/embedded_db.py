import os

from django.core.management.base import BaseCommand, CommandError

from core import embedded_db as db


class Command(BaseCommand):
    help = "Start, stop or show the embedded PostgreSQL used when DATABASE_URL is unset."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "stop", "status"])

    def handle(self, *args, action, **options):
        if os.environ.get("DATABASE_URL"):
            raise CommandError("DATABASE_URL is set: Courtside uses that server, not the embedded one.")
        if action == "start":
            url = db.ensure_running()
            self.stdout.write(self.style.SUCCESS(f"Embedded PostgreSQL running: {url}"))
        elif action == "stop":
            if db.stop():
                self.stdout.write(self.style.SUCCESS("Embedded PostgreSQL stopped."))
            else:
                self.stdout.write("Embedded PostgreSQL was not running.")
        else:
            state = db.status()
            if state["running"]:
                self.stdout.write(f"running  pid={state['pid']}  data={state['pgdata']}  url={state['url']}")
            else:
                self.stdout.write(f"stopped  data={state['pgdata']}")
