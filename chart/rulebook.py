"""A run's quality rules: what each chunk's records count for them, and the run's score.

Each chunk adds its tallies (passed, failed, a few failing examples per rule) to the
run's check results in its own transaction (`add_tallies`), so a resumed run counts
every record once; the score is made from the check results when the run has judged
everything (`score_run`).
"""

import json

from django.db import connection

from atlas_site.schemas import sql_table
from chart.evaluation import Verdict
from governance.pipeline.models import Dataset, Run
from governance.quality.models import CheckResult, QualityRule, QualityScore, RuleKind
from governance.quality.scoring import RuleTally, record_scores

FAILING_EXAMPLES_PER_RULE = 5


class RuleBook:
    """The run's rules, keyed the way failures name them, with per-chunk tallies."""

    def __init__(self, rules: list[QualityRule]):
        self.rules = rules
        self.by_key = {(rule.field_name, rule.kind): rule for rule in rules}

    def tally(self, verdicts: list[Verdict], duplicate_keys: int) -> list[RuleTally]:
        """Each rule's passed and failed records in a chunk.

        Only failures are walked: a judged record that did not fail a rule passed it,
        so the work follows the failures, not records times rules.
        """
        tallies = {rule.pk: RuleTally(rule=rule) for rule in self.rules}
        judged = 0
        for verdict in verdicts:
            if any(failure.rule == "parse" for failure in verdict.failures):
                continue  # a line that did not parse was never judged
            judged += 1
            failed_rules = set()
            for failure in verdict.failures:
                rule = self.by_key.get((failure.field, failure.rule))
                if rule is None:
                    continue
                failed_rules.add(rule.pk)
                tally = tallies[rule.pk]
                if len(tally.examples or []) < FAILING_EXAMPLES_PER_RULE:
                    tally.add_example(
                        {"raw_record": verdict.raw_id, **failure.as_reason()},
                        FAILING_EXAMPLES_PER_RULE,
                    )
            for rule_pk in failed_rules:
                tallies[rule_pk].failed += 1
        for tally in tallies.values():
            if _is_key_rule(tally.rule):
                # The business key is judged per chunk: its duplicates are the records
                # this chunk superseded.
                tally.failed += duplicate_keys
                tally.passed += max(judged - duplicate_keys, 0)
            else:
                tally.passed += judged - tally.failed
        return [t for t in tallies.values() if t.passed or t.failed]


def _is_key_rule(rule: QualityRule) -> bool:
    return rule.kind == RuleKind.UNIQUE and not rule.field_name


def add_tallies(run: Run, tallies: list[RuleTally]) -> None:
    """Add a chunk's counts to the run's check results, in the chunk's transaction."""
    if not tallies:
        return
    with connection.cursor() as cursor:
        for tally in tallies:
            cursor.execute(
                f"""
                INSERT INTO {sql_table(CheckResult)} AS existing
                    (run_id, rule_id, passed_count, failed_count, failing_examples, created_at)
                VALUES (%s, %s, %s, %s, %s::jsonb, now())
                ON CONFLICT (run_id, rule_id) DO UPDATE SET
                    passed_count = existing.passed_count + EXCLUDED.passed_count,
                    failed_count = existing.failed_count + EXCLUDED.failed_count,
                    failing_examples = (
                        SELECT coalesce(jsonb_agg(example), '[]'::jsonb) FROM (
                            SELECT example FROM jsonb_array_elements(
                                existing.failing_examples || EXCLUDED.failing_examples
                            ) AS example LIMIT {FAILING_EXAMPLES_PER_RULE}
                        ) AS kept
                    )
                """,
                [
                    run.pk,
                    tally.rule.pk,
                    tally.passed,
                    tally.failed,
                    json.dumps(tally.examples or []),
                ],
            )


def score_run(dataset: Dataset, run: Run) -> QualityScore | None:
    """The run's quality score from its check results; None when no rule judged anything."""
    tallies = [
        RuleTally(
            rule=result.rule,
            passed=result.passed_count,
            failed=result.failed_count,
            examples=result.failing_examples,
        )
        for result in CheckResult.objects.filter(run=run).select_related("rule__dimension")
    ]
    if not tallies:
        return None
    return record_scores(run=run, dataset=dataset, tallies=tallies)
