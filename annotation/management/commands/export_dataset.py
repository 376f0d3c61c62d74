"""python manage.py export_dataset OUT --format abdomenatlas|nnunetv2|dicom-seg [--label-set S] [--dataset D ...]"""

from django.core.management.base import BaseCommand

from annotation.errors import command_errors
from annotation.management.progress import case_progress
from annotation.services.export import FORMATS, export_dataset


class Command(BaseCommand):
    help = ("Write the finished dataset (final label = latest accepted revision, else an imported label of every "
            "organ, else the ensemble's pseudo-label) in the AbdomenAtlas layout, as an nnU-Net v2 raw dataset, or "
            "as DICOM Segmentation objects referencing the source series (cases imported from DICOM).")

    def add_arguments(self, parser):
        parser.add_argument("out", help="a new or empty folder")
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument("--label-set", default="abdomenatlas")
        parser.add_argument("--dataset", nargs="+", help="only these datasets")
        parser.add_argument("--stow", metavar="URL", help="with --format dicom-seg: store the SEG objects to this "
                                                          "DICOMweb server (STOW-RS)")
        parser.add_argument("--accepted-only", action="store_true",
                            help="only cases whose label a lead accepted or that were imported with every organ")

    def handle(self, *args, **options):
        with case_progress("export", verbosity=options["verbosity"]) as progress:
            with command_errors():
                report = export_dataset(options["out"], format=options["format"], label_set=options["label_set"],
                                        datasets=options["dataset"], accepted_only=options["accepted_only"],
                                        progress=progress, stow=options["stow"])
        self.stdout.write(f"exported {len(report.exported)} cases to {options['out']} ({options['format']}): "
                          f"{report.from_revision} with an accepted revision, {report.from_imported} with the imported "
                          f"label, {report.from_pseudo_label} with the pseudo-label"
                          + (f", {report.from_auto_accepted} auto-accepted" if report.from_auto_accepted else ""))
        self.stdout.write("dataset card: DATASET.md and quality.json beside the labels")
        if options["stow"]:
            self.stdout.write(f"stored {report.stored} DICOM SEG objects to {options['stow']}")
        if report.not_dicom:
            self.stdout.write(f"skipped {len(report.not_dicom)} cases without a DICOM source series (a SEG references "
                              f"it; a series imported before Atlas kept its headers gets them when imported again): "
                              f"{', '.join(report.not_dicom[:10])}"
                              f"{' ...' if len(report.not_dicom) > 10 else ''}")
        if report.skipped:
            self.stdout.write(f"skipped {len(report.skipped)} cases without a final label"
                              f"{' that people made or checked' if options['accepted_only'] else ''}: "
                              f"{', '.join(report.skipped[:10])}{' ...' if len(report.skipped) > 10 else ''}")
