"""manage.py etcd_mirror: mirror the registry into etcd and pull in what others write there, until stopped."""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from registry import conf, selectors
from registry.etcd import EtcdMirror, mirror_lock, mirror_lock_sessions


class Command(BaseCommand):
    help = "Mirror the registry into etcd (instances on leases) and watch etcd for instances others write."

    def add_arguments(self, parser):
        parser.add_argument("--url", default=None, help="etcd client URL (default SERVICES['ETCD_URL'])")
        parser.add_argument("--prefix", default=None, help="key prefix (default SERVICES['ETCD_PREFIX'])")
        parser.add_argument("--once", action="store_true", help="reconcile once, print the counts and exit")
        parser.add_argument("--status", action="store_true",
                            help="print where the running mirror stands (its recorded state, its standbys) and exit")

    def handle(self, *args, url=None, prefix=None, once=False, status=False, **options):
        if status:
            states = selectors.etcd_mirror_states()
            for state in states:
                self.stdout.write(selectors.etcd_mirror_line(state))
            if not states:
                self.stdout.write("No etcd mirror has run (no state recorded).")
            return
        url = url or conf.get("ETCD_URL")
        if not url:
            raise CommandError("No etcd URL: pass --url http://127.0.0.1:2379 or set SERVICES['ETCD_URL'].")
        if not url.startswith(("http://", "https://")):
            # Not echoed: a URL without its scheme may still carry user:password@ that no pattern would mask.
            raise CommandError("The URL given is not an etcd client URL such as http://127.0.0.1:2379.")
        try:
            mirror = EtcdMirror(url, prefix=prefix)
        except ValueError as error:
            raise CommandError(str(error)) from error
        if once:
            try:
                with mirror_lock(mirror.prefix) as held:  # a running mirror of the prefix would push the same keys
                    if held is None:
                        holder = mirror_lock_sessions(mirror.prefix)["holder"] or "another process"
                        raise CommandError(f"A mirror already mirrors {mirror.prefix} (process {holder}): "
                                           "a one-off sync beside it is refused; --status shows it.")
                    mirror.reconcile(watch=False)
            except CommandError:
                raise
            except Exception as error:  # noqa: BLE001 - reported as the command's error
                raise CommandError(f"etcd at {url}: {error}") from error
            finally:
                mirror.close()
            self.stdout.write(self.style.SUCCESS(
                f"In sync with {url} in {mirror.stats.last_reconcile_seconds:.3f} s: {mirror.stats.pushed} pushed, "
                f"{mirror.stats.pulled} pulled, {mirror.stats.removed_here} removed here."))
            return
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())

        def standing_by():
            holder = mirror_lock_sessions(mirror.prefix)["holder"] or "another process"
            self.stdout.write(f"Standby: {holder} mirrors {mirror.prefix}; waiting to take over (Ctrl-C stops)…")
            self.stdout.flush()

        # One mirror a prefix: the lock first (a standby waits here), then the mirror, for as long as it is held.
        with mirror_lock(mirror.prefix, stop=stop, on_standby=standing_by) as held:
            if held is None:
                mirror.close()
                self.stdout.write("Stopped while standing by.")
                return
            self.stdout.write(f"Mirroring the registry to {url} under {mirror.prefix} (Ctrl-C stops)…")
            self.stdout.flush()
            mirror.run(stop, held=held)
        if mirror.lost_lock:
            raise CommandError(f"Lost the PostgreSQL session holding the lock of {mirror.prefix}: stopped, since a "
                               "standby may be mirroring now. Start it again to stand by.")
        self.stdout.write(self.style.SUCCESS(f"Stopped after {mirror.stats.reconciles} reconcile(s)."))
