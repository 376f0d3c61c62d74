"""python manage.py import_predictions --model NAME DIR [--label-map map.json] [--round N] [--label-set NAME]"""

from django.core.management.base import BaseCommand, CommandError

from annotation.errors import command_errors
from annotation.management.progress import case_progress
from annotation.services.ensemble import import_predictions


class Command(BaseCommand):
    help = ("Add another tool's predictions (one label map per case: DIR/CASE.nii.gz or DIR/CASE/<one file>) as an "
            "ensemble member of the current round; pseudo-labels and attention are averaged again and the queue "
            "re-ranked. Before any round, the member joins round 0 (which it can make on its own).")

    def add_arguments(self, parser):
        parser.add_argument("src", metavar="DIR")
        parser.add_argument("--model", required=True, help="member name, e.g. totalsegmentator")
        parser.add_argument("--label-map", help="JSON: the tool's values or names -> organs (see import_cases)")
        parser.add_argument("--round", type=int, help="round number (default: the latest; it must be annotating)")
        parser.add_argument("--label-set", default="abdomenatlas",
                            help="the cases' label set when there is no round yet (default abdomenatlas)")

    def handle(self, *args, **options):
        with case_progress(f"importing {options['model']}", verbosity=options["verbosity"]) as progress:
            with command_errors():
                report = import_predictions(model=options["model"], src=options["src"],
                                            label_map=options["label_map"], round_number=options["round"],
                                            label_set=options["label_set"], progress=progress)
        for line in report.errors:
            self.stderr.write(f"error: {line}")
        if report.round is None:
            self.stdout.write(f"no round is annotating: {report.model} stored for {len(report.imported)} cases; it "
                              "votes from the next round on (start_round; --archs none to infer with imported and "
                              "registered members only)")
        else:
            self.stdout.write(f"round {report.round}: {report.model} added as an ensemble member for "
                              f"{len(report.imported)} cases; queue re-ranked ({report.tasks} tasks)")
        if report.without_prediction:
            shown = ", ".join(report.without_prediction[:10])
            more = len(report.without_prediction) - 10
            self.stdout.write(f"{len(report.without_prediction)} cases have no prediction from {report.model}: "
                              f"{shown}{f' and {more} more' if more > 0 else ''}")
        if report.errors:
            raise CommandError(f"{len(report.errors)} files were not imported")
