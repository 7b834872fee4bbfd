"""The etcd mirror's sync state, written by the running `manage.py etcd_mirror` and read by the operator."""

from django.db import models


class EtcdMirrorState(models.Model):
    """Where the etcd mirror of one key prefix stands: its process, heartbeat, counts, watch revision, error.

    One row a prefix, written by the mirror (registry.etcd) as it runs: at start, after every sync, on every
    failure and at stop, and at least every ETCD_SYNC_EVERY as its heartbeat. Only the mirror holding the
    prefix's advisory lock ("etcd-mirror", core.locks) runs and writes here; others on the prefix stand by
    (selectors read them from pg_locks, not from this row). `endpoints` is stored masked (no password of a
    URL). Read through registry.selectors.etcd_mirror_states().
    """

    prefix = models.CharField("prefix", max_length=300, primary_key=True, help_text="The etcd key prefix mirrored.")
    endpoints = models.CharField("etcd endpoints", max_length=500, blank=True, help_text="Masked.")
    origin = models.CharField("origin", max_length=200, blank=True)
    hostname = models.CharField("host", max_length=255, blank=True)
    pid = models.IntegerField("process id", null=True, blank=True)
    started_at = models.DateTimeField("started", null=True, blank=True)
    heartbeat_at = models.DateTimeField("last heartbeat", null=True, blank=True)
    stopped_at = models.DateTimeField("stopped", null=True, blank=True)
    in_sync = models.BooleanField("in sync", default=False)
    last_sync_at = models.DateTimeField("last successful sync", null=True, blank=True)
    last_reconcile_seconds = models.FloatField("last reconcile (s)", null=True, blank=True)
    mirrored_out = models.IntegerField("instances mirrored out", default=0, help_text="Ours, on a lease in etcd.")
    pulled_in = models.IntegerField("instances pulled in", default=0, help_text="Others', from etcd, here.")
    puts = models.BigIntegerField("puts into etcd", default=0)
    pulls = models.BigIntegerField("changes pulled in", default=0)
    removed_here = models.BigIntegerField("removed here", default=0)
    reconciles = models.BigIntegerField("reconciles", default=0)
    reconnects = models.BigIntegerField("reconnects", default=0, help_text="Reconciles after the sync was lost.")
    errors = models.BigIntegerField("errors", default=0)
    watch_revision = models.BigIntegerField("watch revision", null=True, blank=True)
    last_error = models.TextField("last error", blank=True, help_text="Masked.")
    last_error_at = models.DateTimeField("last error at", null=True, blank=True)

    class Meta:
        verbose_name = "etcd mirror state"
        ordering = ["prefix"]

    def __str__(self) -> str:
        return f"etcd mirror {self.prefix}"
