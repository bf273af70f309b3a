"""The shipped phone pattern finds real-world numbers (issue 13), which its validator now
checks with libphonenumber: French pairs ("04 57 06 40 42"), a trunk prefix in brackets
("+33 (0)3 88 ...", "+31(0)50-3694148" whole), Dutch mobiles ("+31 6 35331277"), German
five-digit area codes ("04744 36143", "(07773) 190289"), 00CC and extensions.

Only a pattern still holding the old shipped regex is changed: a steward's own edit
stands. The payment card pattern keeps its regex (its validator's issuer table grew).
"""

from django.db import migrations

OLD = r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{2,4})[ .-]?\d{3,4}[ .-]?\d{3,4}"
NEW = (
    r"(?:(?:\+|\b00)[1-9]\d{0,2}[ .-]?(?:\(0\)[ .-]?)?)?"
    r"(?:\(\d{1,5}\)[ ./-]?\d{2,8}(?:[ .-]\d{2,8}){0,3}"
    r"|\d{1,5}(?:[ .-]\d{2,5}){3,4}|\d{1,5}[ ./-]?\d{3,8}[ ./-]?\d{3,8}"
    r"|\d{2,5}[ ./-]?\d{5,8}|\d[ ./-]?\d{6,8})"
    r"(?: ?(?:[xX]|[eE]xt\.?) ?\d{1,6})?"
)


def forwards(apps, schema_editor):
    apps.get_model("compliance", "PiiPattern").objects.filter(regex=OLD).update(regex=NEW)


def backwards(apps, schema_editor):
    apps.get_model("compliance", "PiiPattern").objects.filter(regex=NEW).update(regex=OLD)


class Migration(migrations.Migration):
    dependencies = [("compliance", "0011_national_identifiers")]
    operations = [migrations.RunPython(forwards, backwards)]
