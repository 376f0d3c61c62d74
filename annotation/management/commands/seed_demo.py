"""python manage.py seed_demo [--cases N]: demo users and a dataset of synthetic phantoms."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.services.demo import DEMO_USERS, seed_demo


class Command(BaseCommand):
    help = "Create the demo users (admin, lead, two annotators) and import a dataset of synthetic phantoms."

    def add_arguments(self, parser):
        parser.add_argument("--cases", type=int, default=16, help="number of phantom cases (default 16)")
        parser.add_argument("--labelled", type=int, default=3, help="fully labelled cases among them (default 3)")
        parser.add_argument("--seed", type=int, default=2024)

    def handle(self, *args, **options):
        if options["cases"] < 1 or not 0 <= options["labelled"] <= options["cases"]:
            raise CommandError("--cases must be at least 1 and --labelled between 0 and --cases")
        with tqdm(total=options["cases"], unit="case", desc="demo phantoms",
                  disable=options["verbosity"] == 0) as bar:
            report = seed_demo(n_cases=options["cases"], n_full=options["labelled"], seed=options["seed"],
                               progress=lambda done, total, name: bar.update(done - bar.n))
        imported = report.imported
        if imported.errors:
            for line in imported.errors:
                self.stderr.write(f"error: {line}")
            raise CommandError("the demo dataset did not import cleanly")
        self.stdout.write(f"demo dataset: {len(imported.imported)} cases imported, "
                          f"{len(imported.skipped)} already present")
        roles = dict(DEMO_USERS)
        if report.created_users:
            self.stdout.write("demo logins (shown once; `python manage.py changepassword NAME` to reset):")
            for username, password in report.created_users.items():
                self.stdout.write(f"  {username:<12} {password:<16} ({roles[username]})")
        if report.existing_users:
            self.stdout.write(f"existing demo users kept: {', '.join(report.existing_users)} "
                              "(passwords were shown when they were created)")
