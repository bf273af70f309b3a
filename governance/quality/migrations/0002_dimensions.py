"""The six dimensions, and the database rule that their weights always sum to 1."""

from django.db import migrations

from governance.quality.reference_data import ensure_dimensions

# Checked at commit (deferred), so a transaction may move weight from one dimension
# to another in several UPDATEs; whatever commits sums to exactly 1.
WEIGHTS_SUM_TO_ONE = """
CREATE OR REPLACE FUNCTION "quality".check_weights_sum_to_one() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    total numeric;
BEGIN
    SELECT sum(weight) INTO total FROM "quality"."dimension";
    IF total IS NOT NULL AND total <> 1 THEN
        RAISE EXCEPTION 'quality dimension weights must sum to 1; they would sum to %', total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER weights_sum_to_one
    AFTER INSERT OR UPDATE OR DELETE ON "quality"."dimension"
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION "quality".check_weights_sum_to_one();
"""

DROP_WEIGHTS_SUM_TO_ONE = """
DROP TRIGGER IF EXISTS weights_sum_to_one ON "quality"."dimension";
DROP FUNCTION IF EXISTS "quality".check_weights_sum_to_one();
"""


def forwards(apps, schema_editor):
    ensure_dimensions(apps)


class Migration(migrations.Migration):
    dependencies = [("quality", "0001_initial")]
    operations = [
        migrations.RunSQL(WEIGHTS_SUM_TO_ONE, DROP_WEIGHTS_SUM_TO_ONE),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
