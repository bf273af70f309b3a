"""Crafted request input answered 400 or 404 before it can reach the database.

An outside probe found admin pages answering 500 to two kinds of input:

- NUL characters in the query string (`?field=%00`, `?rule=%00`, `?object_type=%00`,
  `?pii_type=%00`, an autocomplete `term=%00`): PostgreSQL text cannot hold NUL, so the
  filter's query failed wherever the value reached SQL. `RejectNulMiddleware` answers
  400 to any request whose path or query string holds one, for every page (admin,
  dashboards, API) at once, instead of each filter guarding itself. No URL Atlas serves
  needs a NUL; form bodies are left to the forms, whose fields refuse NUL themselves.
- Ids that are not ids (`/admin/explore/landingbatch/abc/status/`): custom admin views
  that look a row up by the id in their URL use `object_or_404`, which answers 404 to an
  id the primary key cannot hold, as Django's own change pages do.

Fuzzing every admin URL then found two more in Django's admin itself, handled here too:
an empty `?_to_field=` on any change or delete page (400, by `reject_empty_to_field`,
which AtlasAdminSite applies to every admin view), and a date hierarchy's year out of
range (`?last_seen_at__year=99999999999999999999`, or 9999), which `SafeChangeList`
turns into the admin's "incorrect filter" answer.
"""

from functools import wraps
from urllib.parse import unquote_plus

from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import TO_FIELD_VAR, ChangeList
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404, HttpResponseBadRequest


class RejectNulMiddleware:
    """400 for a request whose path or (decoded) query string holds a NUL character.

    Django logs it as any 400, a warning of django.request naming the path.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "\x00" in unquote_plus(query):
            return HttpResponseBadRequest(
                "Bad request: the URL holds a NUL character.", content_type="text/plain"
            )
        return self.get_response(request)


def parse_pk(model: type[Model], value) -> object | None:
    """`value` (text from a URL) as a primary key of `model`; None when it cannot be one."""
    field = model._meta.pk
    try:
        key = field.to_python(value)
        field.run_validators(key)
    except (ValidationError, ValueError, TypeError):
        return None
    return key


def object_or_404(queryset: QuerySet, object_id) -> Model:
    """The row of `queryset` whose primary key is `object_id` (text from a URL), or 404.

    An id the primary key field cannot hold ("abc", "1.5", 99999999999999999999 for a
    bigint) is a 404 like a missing row, not a ValueError or a database error.
    """
    key = parse_pk(queryset.model, object_id)
    found = None if key is None else queryset.filter(pk=key).first()
    if found is None:
        raise Http404(f"No {queryset.model._meta.verbose_name} with that id.")
    return found


def reject_empty_to_field(view):
    """An admin view that answers 400 to an empty `?_to_field=`.

    Django's change and delete views check a non-empty _to_field and then look the
    object up by the field it names, so an empty one fails with FieldDoesNotExist (500).
    """

    @wraps(view)
    def checked(request, *args, **kwargs):
        if request.GET.get(TO_FIELD_VAR) == "":
            return HttpResponseBadRequest(
                f"Bad request: {TO_FIELD_VAR} is empty.", content_type="text/plain"
            )
        return view(request, *args, **kwargs)

    return checked


class SafeChangeList(ChangeList):
    """A change list whose date hierarchy refuses a year out of range like a bad filter.

    Django builds the hierarchy's bounds with int() and datetime() and only catches
    ValueError around part of it: a year past the C long range (OverflowError) or 9999
    (whose next year does not exist) escaped as a 500.
    """

    def get_filters(self, request):
        try:
            return super().get_filters(request)
        except (OverflowError, ValueError) as exc:
            raise IncorrectLookupParameters(exc) from exc
