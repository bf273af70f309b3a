"""Every admin and dashboard URL, against every role: what a role may not see answers 403 or
redirects to the login page, and never carries the data of the object.

The URLs come from the URL resolver (every named pattern under the admin and dashboards
namespaces) and the admin registry (which model a pattern belongs to), so a new model,
custom admin page or dashboard is checked as soon as it is routed. A URL parameter is
filled from a seeded row of the pattern's model; a parameter the test cannot fill fails
with its name, so it is added here on purpose rather than skipped.

Rows some roles may not see carry MARKER; a refused response must not contain it. A
superuser's audit log page does contain it, which proves the marker would be seen.
"""

from dataclasses import dataclass

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from atlas_site.tests.test_admin_pages import one_of_each  # noqa: F401  (a fixture)
from explore.models import LandingBatch
from governance.compliance.models import AuditAction, AuditLog
from governance.pipeline.models import Dataset

pytestmark = pytest.mark.django_db

MARKER = "zq7-leak-marker-51c0"
LOGIN_PATH = reverse("admin:login")
NAMESPACES = ("admin", "dashboards")
# Site pages any staff user may open, and what an anonymous visitor gets from them.
PUBLIC = {"admin:login"}
# Django's logout and password views answer a GET with 405 / the form whoever is logged in.
SITE_PAGES = {
    "admin:index",
    "admin:logout",
    "admin:password_change",
    "admin:password_change_done",
    "admin:jsi18n",
    "admin:autocomplete",
    "admin:app_list",
    "admin:view_on_site",
}
UNNAMED = {"(?P<url>.*)$", "<path:object_id>/"}
MISSING = object()  # a page opened with a primary key no row has
# URL parameters other than the page's own object, and the model whose row fills them.
PARAM_MODELS = {"batch_id": LandingBatch, "slug": Dataset, "dataset_id": Dataset}
ROLES = ("anonymous", "viewer", "steward", "officer", "superuser")


@dataclass(frozen=True)
class Route:
    name: str  # namespace:name
    params: tuple[str, ...]


def routes() -> list[Route]:
    """Every named URL pattern under the checked namespaces, from the resolver."""
    found: list[Route] = []

    def walk(patterns, namespace: str | None, inherited: tuple[str, ...]):
        for pattern in patterns:
            params = inherited + _params(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, pattern.namespace or namespace, params)
            elif isinstance(pattern, URLPattern) and namespace in NAMESPACES:
                if pattern.name is None:
                    # Unnamed are only the admin's catch-all (404, or a redirect to login)
                    # and its old object URL, which redirects to the change page (checked).
                    assert str(pattern.pattern) in UNNAMED, pattern
                    continue
                found.append(Route(f"{namespace}:{pattern.name}", params))

    walk(get_resolver().url_patterns, None, ())
    return found


def _params(pattern) -> tuple[str, ...]:
    converters = getattr(pattern, "converters", None)
    if converters:
        return tuple(converters)
    return tuple(pattern.regex.groupindex)


def model_admins() -> dict[str, tuple]:
    """'app_model' URL-name prefix -> (model, model admin)."""
    return {
        f"{model._meta.app_label}_{model._meta.model_name}": (model, model_admin)
        for model, model_admin in admin.site._registry.items()
    }


def owner_of(route: Route, registry: dict) -> tuple:
    name = route.name.split(":", 1)[1]
    matches = [prefix for prefix in registry if name.startswith(prefix + "_")]
    if not matches:
        return None, None, None
    prefix = max(matches, key=len)
    model, model_admin = registry[prefix]
    return model, model_admin, name[len(prefix) + 1 :]


@pytest.fixture
def seeded(one_of_each, viewer, steward, officer, django_user_model):  # noqa: F811
    """one_of_each plus rows that carry MARKER."""
    AuditLog.objects.create(actor="system", action=AuditAction.RUN, detail=f"{MARKER} audit")
    django_user_model.objects.create_user(
        username=f"{MARKER}-user", email=f"{MARKER}@example.com", password="x"
    )
    Group.objects.create(name=f"{MARKER}-group")
    Dataset.objects.create(slug="marker-dataset", name=f"{MARKER} dataset")


def build_urls(route: Route, model) -> list[tuple[str, object]]:
    """The URLs to request for a route, each with the row it opens (None: no row).

    Parameters are filled from seeded rows. A model with no seeded row is opened with a
    primary key no row has: refusals are still checked, and a permitted role gets the
    admin's "does not exist" redirect.
    """
    if not route.params:
        return [(reverse(route.name), None)]
    if route.name == "admin:app_list":
        labels = {m._meta.app_label for m in admin.site._registry}
        return [
            (reverse(route.name, kwargs={"app_label": label}), None) for label in sorted(labels)
        ]
    if route.name == "admin:view_on_site":
        kwargs = {
            "content_type_id": ContentType.objects.get_for_model(Dataset).pk,
            "object_id": Dataset.objects.first().pk,
        }
        return [(reverse(route.name, kwargs=kwargs), None)]
    kwargs, opened = {}, None
    for param in route.params:
        own = param in ("object_id", "pk", "id")
        source = model if own else PARAM_MODELS.get(param)
        if source is None:
            pytest.fail(f"{route.name}: the test cannot fill the parameter {param!r}; add it")
        obj = source._default_manager.order_by("pk").first()
        if obj is None:
            assert own, f"no {source.__name__} row to open {route.name} with"
            kwargs[param] = 0
            opened = MISSING
            continue
        kwargs[param] = obj.slug if param == "slug" else obj.pk
        if own:
            opened = obj
    return [(reverse(route.name, kwargs=kwargs), opened)]


def visible_to(user, model_admin, obj) -> bool:
    """Whether the admin lists this row for the user (some admins show only their own)."""
    if obj is None:
        return True
    if obj is MISSING:
        return False
    request = RequestFactory().get("/")
    request.user = user
    return model_admin.get_queryset(request).filter(pk=obj.pk).exists()


def may_view(user, model) -> bool:
    app, name = model._meta.app_label, model._meta.model_name
    return user.has_perm(f"{app}.view_{name}") or user.has_perm(f"{app}.change_{name}")


def assert_refused(response, url: str, who: str):
    if response.status_code == 302:
        assert response["Location"].startswith(LOGIN_PATH), (who, url, response["Location"])
    else:
        assert response.status_code == 403, (who, url, response.status_code)
    assert MARKER.encode() not in response.content, (who, url)


@pytest.mark.parametrize("role", ROLES)
def test_every_admin_and_dashboard_url_answers_each_role_as_it_may(client, request, role, seeded):
    user = None if role == "anonymous" else request.getfixturevalue(role)
    if user is not None:
        client.force_login(user)
    registry = model_admins()
    checked = 0
    for route in routes():
        model, model_admin, view = owner_of(route, registry)
        for url, obj in build_urls(route, model):
            response = client.get(url)
            checked += 1
            who = f"{role} GET {url}"
            assert response.status_code < 500, who

            if route.name in PUBLIC:
                assert response.status_code in (200, 302), who
                continue
            if user is None:
                # Anonymous: every page but the login form sends to the login form.
                if route.name == "admin:logout":
                    assert response.status_code in (302, 405), who  # logging out is a POST
                    assert MARKER.encode() not in response.content, who
                    continue
                assert response.status_code == 302, who
                assert "login" in response["Location"], who
                assert MARKER.encode() not in response.content, who
                continue
            if route.name.startswith("dashboards:"):
                assert response.status_code == 200, who  # every role reads the dashboards
                continue
            if route.name in SITE_PAGES:
                assert response.status_code != 302 or "login" not in response["Location"], who
                continue
            assert model is not None, f"{route.name}: which model's page is this?"

            allowed = may_view(user, model)
            if view == "add":
                allowed = user.has_perm(f"{model._meta.app_label}.add_{model._meta.model_name}")
            elif view == "delete":
                allowed = user.has_perm(f"{model._meta.app_label}.delete_{model._meta.model_name}")
            if not allowed:
                assert_refused(response, url, who)
            elif not visible_to(user, model_admin, obj):
                # Not this user's row (or no row): the admin's "does not exist" redirect
                # to its index, or a refusal; nothing of the row either way.
                if response.status_code == 302:
                    assert response["Location"] in (reverse("admin:index"), LOGIN_PATH), who
                else:
                    assert response.status_code in (403, 404), who
                if obj is not MISSING:
                    assert str(obj).encode() not in response.content, who
            elif view in ("changelist", "change", "history"):
                assert response.status_code == 200, who
            elif view in ("add", "delete"):
                # Permitted by the role; a read-only admin (history rows) still refuses.
                expected = (
                    model_admin.has_add_permission(response.wsgi_request)
                    if view == "add"
                    else model_admin.has_delete_permission(response.wsgi_request)
                )
                if expected:
                    assert response.status_code == 200, who
                else:
                    assert_refused(response, url, who)
    assert checked > 100


def test_the_marker_is_seen_where_it_may_be(client, superuser, seeded):
    # The positive control: a refused page without the marker means something.
    client.force_login(superuser)
    entry = AuditLog.objects.filter(detail__contains=MARKER).get()
    response = client.get(reverse("admin:compliance_auditlog_change", args=[entry.pk]))
    assert MARKER.encode() in response.content
    response = client.get(reverse("admin:auth_user_changelist"))
    assert MARKER.encode() in response.content


def test_viewers_never_see_the_audit_log_nor_users(client, viewer, seeded):
    client.force_login(viewer)
    entry = AuditLog.objects.filter(detail__contains=MARKER).get()
    for url in (
        reverse("admin:compliance_auditlog_changelist"),
        reverse("admin:compliance_auditlog_change", args=[entry.pk]),
        reverse("admin:compliance_auditlog_history", args=[entry.pk]),
        reverse("admin:auth_user_changelist"),
        reverse("admin:auth_group_changelist"),
    ):
        assert_refused(client.get(url), url, "viewer")


def test_the_routes_cover_the_admin_registry_and_the_dashboards():
    names = {route.name for route in routes()}
    for model in admin.site._registry:
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}_"
        for view in ("changelist", "add", "change", "delete", "history"):
            assert prefix + view in names
    assert "dashboards:overview" in names
