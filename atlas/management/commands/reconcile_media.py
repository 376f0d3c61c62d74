"""python manage.py reconcile_media [--delete] [--grace-minutes N]: stored files no row names, rows with no file."""

from datetime import timedelta

from django.core.management.base import BaseCommand

from annotation.services.media import GRACE, reconcile_media


class Command(BaseCommand):
    help = ("List media files that no row names (a crash between writing a file and committing its row leaves one) "
            "and rows whose file is gone; --delete removes the orphan files older than the grace period. A file a "
            "row names is never deleted, and rows are only reported.")

    def add_arguments(self, parser):
        parser.add_argument("--delete", action="store_true", help="remove orphan files older than the grace period")
        parser.add_argument("--grace-minutes", type=float, default=GRACE.total_seconds() / 60,
                            help="orphans younger than this may belong to a write in flight: kept (default 60)")

    def handle(self, *args, delete: bool, grace_minutes: float, **options):
        report = reconcile_media(delete=delete, grace=timedelta(minutes=grace_minutes))
        for name in report.orphans:
            self.stdout.write(f"{'removed' if name in report.removed else 'orphan'}: {name}")
        for name in report.kept:
            self.stdout.write(f"no row names it, outside the layouts reconcile_media removes (kept): {name}")
        for name in report.young:
            self.stdout.write(f"orphan, younger than the grace period (kept): {name}")
        for label, pk, field, name in report.missing:
            self.stdout.write(f"missing: {label} {pk} {field}: {name}")
        self.stdout.write(f"{len(report.orphans)} orphan files ({len(report.removed)} removed), "
                          f"{len(report.young)} recent, {len(report.kept)} kept, "
                          f"{len(report.missing)} rows without their file")
