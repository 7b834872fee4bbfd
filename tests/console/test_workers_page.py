"""The workers page: the operator's view of the task cluster, and why it can be empty; never a tenant's."""

from __future__ import annotations

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_the_operator_gets_the_workers_page_and_it_says_why_no_cluster_reports(operator_client):
    html = operator_client.get("/admin/tasks/taskrun/workers/").content.decode()
    assert "Task workers" in html and 'id="no-clusters"' in html
    assert "REDIS_URL" in html or "qcluster" in html


def test_the_dashboard_links_to_the_workers_page(operator_client):
    html = operator_client.get("/admin/").content.decode()
    assert 'href="/admin/tasks/taskrun/workers/"' in html and 'href="/admin/tasks/workerprocess/"' in html


def test_a_tenant_admin_has_no_workers_page(lakers_client):
    assert lakers_client.get("/admin/tasks/taskrun/workers/").status_code == 404


def test_qinfo_runs_now_that_blessed_is_installed(capsys):
    call_command("qinfo")
    assert "Clusters" in capsys.readouterr().out
