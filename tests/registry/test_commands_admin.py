"""Commands and the operator admin: thin callers of the same services, same refusals."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from registry import registration
from registry.models import RegistryEvent, ServiceInstance, ServiceToken
from tests.registry.conftest import register

ADMIN = "/admin/services/serviceinstance/"


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_register_list_and_deregister_from_the_command_line(db):
    output = run("service_register", "stats-api", "--id", "stats-1", "--host", "10.0.0.1", "--port", "8080",
                 "--tag", "api", "--tag", "production", "--ttl", "30s", "--deregister-after", "10m")
    assert "Registered stats-api/stats-1 at 10.0.0.1:8080 (critical)" in output
    registration.service_heartbeat(service_id="stats-1")

    listing = run("service_list", "--tag", "api")
    assert "stats-1" in listing and "passing" in listing and "api,production" in listing

    assert "Deregistered stats-1." in run("service_deregister", "stats-1")
    assert not ServiceInstance.objects.exists()
    with pytest.raises(CommandError, match="Not registered: stats-1"):
        run("service_deregister", "stats-1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "port"),
        (["--port", "8080", "--http", "http://x.test/", "--interval", "10ms"], "interval"),
    ],
)
def test_the_register_command_refuses_bad_input_and_writes_nothing(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("service_register", "stats-api", "--id", "stats-1", "--host", "10.0.0.1", *args)
    assert not ServiceInstance.objects.exists()


def test_the_token_command_prints_the_token_once_and_stores_its_hash(db):
    output = run("service_token", "stats-api")
    token = output.strip().splitlines()[-1]
    assert token.startswith("cs_svc_")
    assert ServiceToken.objects.get().token_hash != token
    with pytest.raises(CommandError, match="already has a token"):
        run("service_token", "stats-api")
    assert run("service_token", "stats-api", "--rotate").strip().splitlines()[-1] != token


def test_the_admin_groups_services_with_counts_by_status(operator_client):
    register("a", checks=[])
    register("b")  # critical
    register("c", name="billing", checks=[])

    page = operator_client.get(ADMIN).content.decode()

    assert 'id="service-summary"' in page
    assert "<td>stats-api</a></td><td>2</td><td>1</td><td>0</td><td>1</td>" in page.replace(
        '<td><a href="?name=stats-api">', "<td>")
    assert "billing" in page and "never" in page


def test_admin_actions_maintenance_and_deregister(operator_client):
    register("a", checks=[])
    register("b", checks=[])
    ids = [str(pk) for pk in ServiceInstance.objects.order_by("service_id").values_list("pk", flat=True)]

    operator_client.post(ADMIN, {"action": "maintenance_on", "_selected_action": ids[:1]})
    assert ServiceInstance.objects.get(service_id="a").status == "maintenance"
    operator_client.post(ADMIN, {"action": "maintenance_off", "_selected_action": ids[:1]})
    assert ServiceInstance.objects.get(service_id="a").status == "passing"
    operator_client.post(ADMIN, {"action": "deregister", "_selected_action": ids})
    assert not ServiceInstance.objects.exists()
    assert RegistryEvent.objects.filter(kind="deregistered").count() == 2


def test_the_admin_shows_check_history_on_an_instance(operator_client):
    register("a", checks=[{"kind": "ttl", "ttl": "30s"}])
    registration.service_heartbeat(service_id="a")
    page = operator_client.get(f"{ADMIN}{ServiceInstance.objects.get().pk}/change/").content.decode()
    assert "recent results" in page.lower() and "✔ · passing" in page


def test_registering_from_the_admin_goes_through_the_service(operator_client):
    response = operator_client.post(f"{ADMIN}add/", {
        "service_id": "stats-9", "name": "stats-api", "host": "10.0.0.9", "port": "8081", "tags": "api,eu",
        "metadata": "{}", "weight": "1",
    })
    assert response.status_code == 302, response.context["adminform"].form.errors
    instance = ServiceInstance.objects.get(service_id="stats-9")
    assert (instance.tags, instance.status, instance.checks.get().kind) == (["api", "eu"], "critical", "ttl")
    assert RegistryEvent.objects.filter(kind="registered", service_id="stats-9").exists()

    refused = operator_client.post(f"{ADMIN}add/", {
        "service_id": "stats-10", "name": "register", "host": "10.0.0.9", "port": "8081", "tags": "",
        "metadata": "{}", "weight": "1",
    })
    # The form comes back with the service's reason and the operator's input, and nothing is written.
    assert refused.status_code == 200
    form = refused.context["adminform"].form
    assert "reserved" in " ".join(form.errors.get("name", []) + form.non_field_errors())
    assert 'value="stats-10"' in refused.content.decode() and 'value="10.0.0.9"' in refused.content.decode()
    assert not ServiceInstance.objects.filter(service_id="stats-10").exists()
    assert not RegistryEvent.objects.filter(service_id="stats-10").exists()


def test_a_token_for_a_service_that_has_one_is_refused_on_the_form(operator_client):
    operator_client.post("/admin/services/servicetoken/add/", {"service_name": "stats-api"})
    again = operator_client.post("/admin/services/servicetoken/add/", {"service_name": "stats-api"})
    assert again.status_code == 200 and again.context["adminform"].form.errors
    assert 'value="stats-api"' in again.content.decode()
    assert ServiceToken.objects.filter(service_name="stats-api").count() == 1


def test_the_token_admin_shows_a_new_token_once_and_masks_it_afterwards(operator_client):
    created = operator_client.post("/admin/services/servicetoken/add/", {"service_name": "stats-api"}, follow=True)
    token_row = ServiceToken.objects.get()
    assert "cs_svc_" in created.content.decode() and "copy it now" in created.content.decode()

    listing = operator_client.get("/admin/services/servicetoken/").content.decode()
    assert "********" in listing and token_row.token_hash not in listing
