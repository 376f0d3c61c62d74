"""python manage.py register_interactive --kind nninteractive --folder DIR [--name NAME]
python manage.py register_interactive --name NAME --remove"""

from django.core.management.base import BaseCommand

from annotation.errors import command_errors
from annotation.services.interactive import INTERACTIVE_KINDS, register_interactive, unregister_interactive


class Command(BaseCommand):
    help = ("Offer a promptable engine you downloaded in the workspace's click tool and to 3D Slicer, beside Atlas's "
            "click model: an nnInteractive model folder (its weights are CC BY-NC-SA 4.0: non-commercial use only). "
            "The folder and the nnInteractive package are checked on this machine; the folder must be readable at "
            "the same path where the web processes run.")

    def add_arguments(self, parser):
        parser.add_argument("--kind", choices=INTERACTIVE_KINDS, default=INTERACTIVE_KINDS[0])
        parser.add_argument("--folder", help="the model folder (plans.json, dataset.json, inference_info.json, "
                                             "fold_N/checkpoint_final.pth), e.g. ~/.nninteractive/models/ID")
        parser.add_argument("--name", help="the engine's name (default: its kind)")
        parser.add_argument("--remove", action="store_true", help="stop offering it (its record stays)")

    def handle(self, *args, **options):
        with command_errors():
            if options["remove"]:
                model = unregister_interactive(name=options["name"] or options["kind"])
                self.stdout.write(f"{model.name} unregistered: the workspace no longer offers it")
                return
            model, created = register_interactive(kind=options["kind"], folder=options["folder"],
                                                  name=options["name"])
        meta = model.metadata
        self.stdout.write(f"{'registered' if created else 'updated'} {model.name}: {meta['version']}, "
                          f"configuration {meta['configuration']}")
        self.stdout.write(f"licence: {meta['licence']}")
        if meta.get("folder_licence") and meta["folder_licence"] not in meta["licence"]:
            self.stdout.write(f"the folder's LICENSE says: {meta['folder_licence']}")
        self.stdout.write(f"cite: {meta['citation']}")
        self.stdout.write("the workspace offers it from now on (engine=nninteractive in POST /api/cases/ID/click/)")
