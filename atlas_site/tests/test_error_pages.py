"""403 and 404 pages: inside the admin's frame for its addresses, plain elsewhere, never
saying more than the status."""

import pytest

pytestmark = pytest.mark.django_db


def test_an_admin_page_refused_keeps_the_admins_frame(client, viewer):
    client.force_login(viewer)
    response = client.get("/admin/auth/user/add/")
    assert response.status_code == 403
    html = response.content.decode()
    assert "You may not open this page" in html
    assert 'id="site-name"' in html  # the admin's header
    assert 'class="breadcrumbs"' in html
    assert 'href="/dashboards/"' in html


def test_an_unknown_admin_address_is_a_404_in_the_admins_frame(client, steward):
    client.force_login(steward)
    response = client.get("/admin/pipeline/dataset/999999/change/nothing/")
    assert response.status_code in (302, 404)
    response = client.get("/admin/no-such-app/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "There is no such page" in html and 'id="site-name"' in html


def test_elsewhere_a_plain_page_leads_home(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "There is no such page" in html
    assert 'href="/dashboards/"' in html
    assert "no-such-page" not in html  # the address is not echoed


def test_a_viewer_sees_no_upload_button_and_a_framed_refusal(client, viewer, customers):
    client.force_login(viewer)
    ingest = f"/admin/pipeline/dataset/{customers.pk}/ingest/"
    page = client.get(f"/admin/pipeline/dataset/{customers.pk}/change/").content.decode()
    assert ingest not in page
    refused = client.get(ingest)
    assert refused.status_code == 403
    assert "You may not open this page" in refused.content.decode()
    assert 'id="site-name"' in refused.content.decode()
