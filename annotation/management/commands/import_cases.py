"""python manage.py import_cases SRC --dataset NAME [--label-set abdomenatlas] [--labels L] [--label-map M]"""

from django.core.management.base import BaseCommand, CommandError

from annotation.errors import command_errors
from annotation.management.progress import case_progress
from annotation.services.imports import SeriesQuery, import_cases


class Command(BaseCommand):
    help = ("Import CT cases: a NIfTI file (with --labels) or folder, the AbdomenAtlas layout "
            "(CASE/ct.nii.gz + CASE/segmentations/), an nnU-Net / MSD dataset, or a DICOM series (folder or .zip).")

    def add_arguments(self, parser):
        parser.add_argument("src", help="file or folder to import, or a DICOMweb server's URL (http(s)://...)")
        parser.add_argument("--dataset", required=True, help="dataset name (created if new)")
        parser.add_argument("--label-set", default="abdomenatlas", help="label set of a new dataset")
        parser.add_argument("--labels", help="multi-label segmentation of SRC (a folder of them if SRC is a folder; "
                                             "for several DICOM series, one file per series named by series UID "
                                             "or case name)")
        parser.add_argument("--label-map", help="JSON mapping foreign label values or names to organs "
                                                "(fixtures/label_maps/totalsegmentator.json for TotalSegmentator)")

        web = parser.add_argument_group("DICOMweb (SRC is a server's URL): which series to import")
        web.add_argument("--study-uid", help="the series of this study")
        web.add_argument("--series-uid", help="this series")
        web.add_argument("--modality", help="series of this modality (default CT; 'any' for every modality)")
        web.add_argument("--study-date", help="studies of this date or range: YYYYMMDD or YYYYMMDD-YYYYMMDD")

    def handle(self, *args, **options):
        query = None
        if any(options[k] for k in ("study_uid", "series_uid", "modality", "study_date")):
            modality = options["modality"] or "CT"
            query = SeriesQuery(study_uid=options["study_uid"], series_uid=options["series_uid"],
                                modality=None if modality == "any" else modality, study_date=options["study_date"])
        with case_progress("import", verbosity=options["verbosity"]) as progress, command_errors():
            report = import_cases(options["src"], dataset=options["dataset"], label_set=options["label_set"],
                                  labels=options["labels"], label_map=options["label_map"], query=query,
                                  progress=progress)
        for line in report.notes:
            self.stdout.write(f"note: {line}")
        for line in report.errors:
            self.stderr.write(f"error: {line}")
        self.stdout.write(f"imported {len(report.imported)}, already present {len(report.skipped)}, "
                          f"failed {len(report.errors)}")
        if report.errors:
            total = len(report.imported) + len(report.skipped) + len(report.errors)
            raise CommandError(f"{len(report.errors)} of {total} sources failed", returncode=1)
