"""Fuzzing the admin: its forms, and every URL's path ids and query parameters. Never a 500.

Each form (dataset with its contract inline, contract field, PII pattern, quality rule,
metric definition) is posted by a superuser with values drawn per field: mostly valid
choices, and hostile text everywhere else (NULs, control characters, right-to-left
marks, SQL, templates, catastrophic regexes, deep JSON, huge numbers). The answer must
be the form again with its errors (200) or a saved object (302) whose text fields hold
exactly what was posted (trimmed, as Django does). Every admin and dashboard URL is
requested with hostile ids in its path and hostile values in its query parameters (see
the section at the end).

Bounded and derandomized (atlas_site.testing.fuzz, profile "ci").
"""

import inspect
import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django import forms
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.forms import SimpleArrayField
from django.db import transaction
from django.test import RequestFactory
from django.urls import NoReverseMatch, Resolver404, resolve, reverse
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from atlas_site.testing.fuzz import (
    HOSTILE_IDS,
    HOSTILE_QUERY_VALUES,
    deep_json,
    examples,
    hostile_text,
    json_values,
    report,
    values_for,
)
from atlas_site.tests.test_admin_pages import one_of_each  # noqa: F401  (a fixture)
from atlas_site.tests.test_roles_urls import PARAM_MODELS, Route, model_admins, owner_of, routes
from governance.compliance.models import PiiPattern
from governance.pipeline.models import Dataset, DatasetField
from governance.quality.models import QualityRule
from navigate.models import MetricDefinition

pytestmark = pytest.mark.django_db

slugs = st.from_regex(r"[a-z][a-z0-9-]{0,30}", fullmatch=True)


CONTRACT = ["id", "email", "tier", "amount", "ssn", "signup", "notes"]  # the customers fixture
# Plausible values of fields whose meaning a generic value would always miss.
PLAUSIBLE = {
    "pattern": st.sampled_from(["", r"^\d+$", r"[A-Z]{2}\d{4}", r"\b\w+@example\.com\b"]),
    "regex": st.sampled_from([r"\b\d{3}-\d{2}-\d{4}\b", r"[A-Z]{2}\d{6}", r"\bfoo\w*"]),
    "schedule": st.sampled_from(["", "*/5 * * * *", "0 3 * * 1"]),
    "quality_threshold": st.sampled_from(["0.8", "1"]),
    "confidence": st.sampled_from(["0.5", "0.9"]),
    "min_confidence": st.sampled_from(["0.5", "0.9"]),
    "position": st.integers(0, 50).map(str),
    "max_length": st.sampled_from(["", "10", "255"]),
    "minimum": st.sampled_from(["", "0", "-5.5"]),
    "maximum": st.sampled_from(["", "100", "1e3"]),
    "parameters": st.sampled_from(["{}", '{"min": 0}', '{"max_age_hours": 24}']),
    "business_key": st.sampled_from(CONTRACT).map(str),
    "dimension_fields": st.sampled_from(["", "tier", "tier,email"]),
    "allowed_values": st.lists(slugs, max_size=3).map(",".join),
    "context_words": st.lists(slugs, max_size=3).map(",".join),
    "freshness_target": st.sampled_from(["1 00:00:00", "00:30:00"]),
    "time_field": st.just("signup"),
    "event_time_field": st.sampled_from(["", "signup"]),
    "value_field": st.sampled_from(["", "amount", "id"]),
    "field_name": st.sampled_from(["", *CONTRACT]),
}
# A contract field's name is an identifier (DatasetField's form and the dataset's inline).
IDENTIFIERS = st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True)


def field_value(draw, name: str, field: forms.Field, hostile: bool, identifiers: bool = False):
    """A value for one form field: plausible, or hostile. None: left out of the post."""
    if isinstance(field, forms.BooleanField):
        return "on" if draw(st.booleans()) else None
    if hostile:
        return draw(hostile_text)
    if isinstance(field, forms.ModelChoiceField):
        choices = list(field.queryset.values_list("pk", flat=True)[:20])
        return str(draw(st.sampled_from(choices))) if choices else ""
    if isinstance(field, forms.ChoiceField):
        values = [str(value) for value, _ in field.choices if value != ""]
        return draw(st.sampled_from(values)) if values else ""
    if name in PLAUSIBLE:
        return draw(PLAUSIBLE[name])
    if name == "name" and identifiers:
        return draw(IDENTIFIERS)
    if isinstance(field, forms.JSONField):
        return draw(json_values.map(json.dumps))
    if isinstance(field, forms.DecimalField | forms.IntegerField):
        return draw(st.sampled_from(["0", "1", "0.5"]))
    if isinstance(field, SimpleArrayField):
        return ",".join(draw(st.lists(slugs, max_size=3)))
    if isinstance(field, forms.SlugField):
        return draw(slugs)
    return draw(st.one_of(slugs, st.text(max_size=60)))


HOSTILE_EXTRAS = {
    # Hostile values of a kind hostile_text does not cover.
    forms.JSONField: st.integers(1, 5000).map(deep_json),
    forms.DecimalField: st.sampled_from(["1e309", "NaN", "-Infinity", "9" * 400, "1E+999999"]),
    forms.IntegerField: st.integers(-(2**70), 2**70).map(str),
    forms.DurationField: st.sampled_from(["999999999 00:00:00", "P99999999999D", "-1"]),
}


def admin_form(model, request):
    return admin.site._registry[model].get_form(request)


@st.composite
def form_data(draw, form_class, skip=(), identifiers=False) -> dict:
    """Plausible values, except in up to two fields (none, sometimes): hostile there."""
    names = [name for name in form_class.base_fields if name not in skip]
    hostile = draw(st.sets(st.sampled_from(names), max_size=2))
    data = {}
    for name in names:
        field = form_class.base_fields[name]
        extra = next((s for kind, s in HOSTILE_EXTRAS.items() if isinstance(field, kind)), None)
        if name in hostile and extra is not None and draw(st.booleans()):
            value = draw(extra)
        else:
            value = field_value(draw, name, field, name in hostile, identifiers)
        if value is not None:
            data[name] = value
    return data


def saved_intact(obj, data: dict, form_class) -> None:
    """The saved object's plain text fields hold what was posted (trimmed by Django).

    Fields of the form only (a contract field's reason for lowering, which goes to the
    audit log) are not stored on the object.
    """
    stored_names = {field.name for field in obj._meta.concrete_fields}
    for name, field in form_class.base_fields.items():
        if name not in stored_names:
            continue
        if type(field) in (forms.CharField, forms.SlugField) and name in data:
            stored = getattr(obj, name)
            assert stored == data[name].strip(), (name, stored, data[name])


FORMS = [
    ("dataset", Dataset, "/admin/pipeline/dataset/add/"),
    ("contract field", DatasetField, "/admin/pipeline/datasetfield/add/"),
    ("PII pattern", PiiPattern, "/admin/compliance/piipattern/add/"),
    ("quality rule", QualityRule, "/admin/quality/qualityrule/add/"),
    ("metric definition", MetricDefinition, "/admin/navigate/metricdefinition/add/"),
]


@pytest.mark.parametrize(("label", "model", "url"), FORMS, ids=[form[0] for form in FORMS])
def test_fuzzed_admin_forms_answer_errors_or_save_intact(
    client, superuser, customers, label, model, url
):
    request = RequestFactory().get(url)
    request.user = superuser
    form_class = admin_form(model, request)
    inline_form = admin_form(DatasetField, request) if model is Dataset else None
    identifiers = model is DatasetField
    client.force_login(superuser)
    figures = Counter()

    @hypothesis_settings(max_examples=examples(25))
    @given(data=form_data(form_class, identifiers=identifiers), inline=st.data())
    def run(data, inline):
        figures["cases"] += 1
        post = dict(data)
        if inline_form is not None:
            # The contract inline of the dataset page: one fuzzed field.
            row = inline.draw(form_data(inline_form, skip=("dataset",), identifiers=True))
            post |= {f"fields-0-{name}": value for name, value in row.items()}
            post |= {
                "fields-TOTAL_FORMS": "1",
                "fields-INITIAL_FORMS": "0",
                "fields-MIN_NUM_FORMS": "0",
                "fields-MAX_NUM_FORMS": "1000",
            }
        before = set(model.objects.values_list("pk", flat=True))
        response = client.post(url, post)
        assert response.status_code in (200, 302), response.status_code
        created = model.objects.exclude(pk__in=before)
        if response.status_code == 200:
            figures["refused"] += 1
            assert not created.exists(), "a refused form saved nothing"
            assert b"errornote" in response.content or b"errorlist" in response.content
            return
        figures["saved"] += 1
        [obj] = created
        saved_intact(obj, data, form_class)

    run()
    report(f"admin form: {label}", **figures)


def test_deeply_nested_rule_parameters_are_a_form_error(client, superuser, customers):
    """Found by fuzzing: JSON ~900 levels deep made the quality rule form answer 500."""
    from governance.quality.models import QualityDimension

    client.force_login(superuser)
    for depth in (900, 5000):
        response = client.post(
            "/admin/quality/qualityrule/add/",
            {
                "dataset": customers.pk,
                "field_name": "amount",
                "dimension": QualityDimension.objects.first().pk,
                "kind": QualityRule._meta.get_field("kind").choices[0][0],
                "parameters": deep_json(depth),
                "origin": QualityRule._meta.get_field("origin").choices[0][0],
            },
        )
        assert response.status_code == 200
        assert f"This JSON nests {depth} levels deep; at most 64 are allowed." in (
            response.content.decode()
        )
    assert not QualityRule.objects.exists()


@pytest.mark.parametrize(
    ("parameters", "outcome"),
    [("", {}), ("null", {}), ("[1]", "Parameters are a JSON object"), ('"x"', "a JSON object")],
)
def test_rule_parameters_left_empty_are_none_and_must_be_an_object(
    client, superuser, customers, parameters, outcome
):
    """Found by fuzzing: an empty Parameters box (or null) answered 500 (NOT NULL column)."""
    from governance.quality.models import QualityDimension

    client.force_login(superuser)
    response = client.post(
        "/admin/quality/qualityrule/add/",
        {
            "dataset": customers.pk,
            "field_name": "id",
            "dimension": QualityDimension.objects.get(code="completeness").pk,
            "kind": "not_null",
            "parameters": parameters,
            "origin": "steward",
        },
    )
    if isinstance(outcome, dict):
        assert response.status_code == 302
        assert QualityRule.objects.get().parameters == outcome
    else:
        assert response.status_code == 200
        assert outcome in response.content.decode()
        assert not QualityRule.objects.exists()


# --- Every admin URL: hostile path ids and query parameters -------------------------------------
#
# The URLs come from the URL resolver (atlas_site.tests.test_roles_urls.routes: every named
# pattern of the admin and the dashboards), so a new page is fuzzed as soon as it is routed.
# Each path parameter gets a few hostile ids and a NUL; each query parameter a page reads (its
# changelist's filters, search, ordering and paging, what its view's code reads from
# request.GET, and one nobody reads) a few hostile values, and each page a NUL in its query
# string. The answer must never be a 500, and a NUL must be a 400. Found by an outside probe:
# NUL in five filters and non-numeric ids in two custom pages answered 500.

SENTINEL = "8675309"  # stands for the parameter under test while its URL is reversed
# Parameters Django's own views read through helpers the scan of request.GET does not see.
KNOWN_PARAMS = {
    "admin:autocomplete": ("app_label", "model_name", "field_name", "term", "page"),
    "admin:login": ("next",),
    "admin:logout": ("next",),
    "admin:password_change": ("next",),
}
CHANGELIST_PARAMS = ("q", "o", "p", "all", "e", "_changelist_filters")
EVERY_PAGE_PARAMS = ("_to_field", "_popup", "zz-nobody-reads-this")
_GET_PARAM = re.compile(r"""request\.GET(?:\.get|\.getlist|\.pop)?[(\[]\s*["']([\w-]+)["']""")


@dataclass
class Target:
    route: Route
    model: Any
    model_admin: Any
    view: str | None
    kwargs: dict


def url_targets() -> list[Target]:
    """Each route with a seeded value for each of its parameters."""
    registry = model_admins()
    targets = []
    for route in routes():
        model, model_admin, view = owner_of(route, registry)
        kwargs = {}
        for param in route.params:
            if param == "app_label":
                kwargs[param] = "pipeline"
            elif param == "content_type_id":
                kwargs[param] = ContentType.objects.get_for_model(Dataset).pk
            else:
                own = param in ("object_id", "pk", "id")
                source = (model or Dataset) if own else PARAM_MODELS.get(param)
                assert source is not None, f"{route.name}: fill the parameter {param!r}"
                obj = source._default_manager.order_by("pk").first()
                kwargs[param] = 0 if obj is None else obj.slug if param == "slug" else obj.pk
        targets.append(Target(route, model, model_admin, view, kwargs))
    return targets


def view_get_params(path: str) -> set[str]:
    """The query parameters the view's own code reads from request.GET."""
    try:
        func = resolve(path).func
    except Resolver404:
        return set()
    func = inspect.unwrap(getattr(func, "view_class", func))
    try:
        source = inspect.getsource(getattr(func, "get", func))
    except (OSError, TypeError):
        return set()
    return set(_GET_PARAM.findall(source))


def changelist_params(target: Target, user) -> list[str]:
    """The parameters of a change list's filters and date hierarchy."""
    request = RequestFactory().get("/")
    request.user = user
    changelist = target.model_admin.get_changelist_instance(request)
    names = [name for spec in changelist.filter_specs for name in spec.expected_parameters()]
    if changelist.date_hierarchy:
        names += [f"{changelist.date_hierarchy}__{part}" for part in ("year", "month", "day")]
    return names


def fetch(client, url: str):
    """GET in a savepoint: a view that breaks the transaction leaves the next ones whole."""
    with transaction.atomic():
        return client.get(url)


@pytest.mark.usefixtures("one_of_each")
def test_every_admin_url_answers_hostile_path_ids_without_a_500(client, superuser):
    client.force_login(superuser)
    client.raise_request_exception = False
    failures, figures = [], Counter()
    for position, target in enumerate(url_targets()):
        for param in target.route.params:
            try:
                template = reverse(target.route.name, kwargs={**target.kwargs, param: SENTINEL})
            except NoReverseMatch:  # a pattern that takes listed values only (app_label)
                seeded = f"/{target.kwargs[param]}/"
                template = reverse(target.route.name, kwargs=target.kwargs).replace(
                    seeded, f"/{SENTINEL}/", 1
                )
            for value in [*values_for(position, examples(3), HOSTILE_IDS), "\x00"]:
                url = template.replace(SENTINEL, quote(value, safe=""), 1)
                status = fetch(client, url).status_code
                figures["requests"] += 1
                figures[f"status {status}"] += 1
                if status >= 500 or (value == "\x00" and status != 400):
                    failures.append((status, url))
    report("admin URLs: path ids", **figures)
    assert not failures, failures
    assert figures["requests"] > 300


@pytest.mark.usefixtures("one_of_each")
def test_every_admin_url_answers_hostile_query_parameters_without_a_500(client, superuser):
    client.force_login(superuser)
    client.raise_request_exception = False
    failures, figures = [], Counter()
    for position, target in enumerate(url_targets()):
        path = reverse(target.route.name, kwargs=target.kwargs)
        # The page's own parameters get two values each, the generic ones (search, paging,
        # popups) one, so that the whole set stays at about a thousand requests.
        own = [*KNOWN_PARAMS.get(target.route.name, ()), *sorted(view_get_params(path))]
        generic = list(EVERY_PAGE_PARAMS)
        if target.view == "changelist":
            own += changelist_params(target, superuser)
            generic += CHANGELIST_PARAMS
        names = dict.fromkeys(own, 2) | {name: 1 for name in generic if name not in own}
        for index, (name, count) in enumerate(names.items()):
            values = values_for(position + index, examples(count), HOSTILE_QUERY_VALUES)
            if index == 0:
                values.append("\x00")
            for value in values:
                url = f"{path}?{urlencode({name: value})}"
                status = fetch(client, url).status_code
                figures["requests"] += 1
                figures[f"status {status}"] += 1
                if status >= 500 or (value == "\x00" and status != 400):
                    failures.append((status, url[:300]))
    report("admin URLs: query parameters", **figures)
    assert not failures, failures
    assert figures["requests"] > 800
