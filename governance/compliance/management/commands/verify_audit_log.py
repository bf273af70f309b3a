"""manage.py verify_audit_log [--quarter 2026-Q4]: recompute the audit log's hash chain.

Walks each partition of compliance.audit_log in id order, recomputes every entry's hash
(governance/compliance/audit_chain.py says what it covers) and prints, per partition,
the entries verified and each quarter's last entry (id and hash: keep them elsewhere to
notice later if the newest entries go missing), or the first broken link: the partition,
the entry's id and what differs. Exits 1 when a link is broken.
"""

from django.core.management.base import BaseCommand, CommandError

from governance.compliance import audit_chain


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chain, partition by partition in id order; report the "
        "first broken link of each partition, or how many entries were verified."
    )

    def add_arguments(self, parser):
        parser.add_argument("--quarter", help="only this quarter, e.g. 2026-Q4")
        parser.add_argument("--database", default="default", help="Django database alias")

    def handle(self, *args, quarter, database, **options):
        start = None
        if quarter:
            try:
                start = audit_chain.parse_quarter(quarter)
            except ValueError as error:
                raise CommandError(str(error)) from None
        results = audit_chain.verify(quarter=start, using=database)
        verified, broken = 0, []
        for result in results:
            verified += result.entries
            if not result.quarters and start is not None:
                continue  # the DEFAULT partition, holding nothing of that quarter
            quarters = ", ".join(result.quarters) or "no entries"
            if result.broken is not None:
                broken.append(result)
                self.stdout.write(
                    f"{result.partition} ({quarters}): BROKEN at id {result.broken.id} "
                    f"({result.broken.quarter}), after {result.entries:,} entries verified: "
                    f"{result.broken.reason}"
                )
                continue
            heads = "; ".join(
                f"{label} last id {head_id}, hash {head_hash.hex()}"
                for label, (head_id, head_hash) in result.heads.items()
            )
            self.stdout.write(
                f"{result.partition} ({quarters}): {result.entries:,} entries verified"
                + (f"; {heads}" if heads else "")
            )
        if start is not None and not any(result.quarters for result in results):
            self.stdout.write(
                f"no partition holds {audit_chain.quarter_label(start)} (archived, or not made)"
            )
        if broken:
            first = broken[0]
            raise CommandError(
                f"the audit log's chain is broken in {len(broken)} partition(s); the first: "
                f"{first.partition} at id {first.broken.id} ({verified:,} entries verified "
                "before the breaks)"
            )
        self.stdout.write(self.style.SUCCESS(f"{verified:,} entries verified"))
