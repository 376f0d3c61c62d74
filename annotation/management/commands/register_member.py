"""python manage.py register_member NAME --kind nnunetv2 --folder DIR [--label-map F] [--folds 0 1 ...]
python manage.py register_member NAME --kind monai-bundle --folder DIR --label-map F
python manage.py register_member NAME --kind totalsegmentator --task total|fast
python manage.py register_member NAME --remove"""

from django.core.management.base import BaseCommand, CommandError

from annotation.errors import command_errors
from annotation.services.members import KINDS, register_member, unregister_member


class Command(BaseCommand):
    help = ("Register a model you already have as an ensemble member that Atlas runs in every round's inference and "
            "never fine-tunes: an nnU-Net v2 trained model folder (run by nnunetv2's predictor, soft votes), a MONAI "
            "bundle folder (run by its own inference config: a bundle's config runs any code it names, so register "
            "only bundles you trust), or TotalSegmentator (where its package and weights are installed). It is "
            "checked on this machine; its "
            "folder must be readable at the same path on the workers.")

    def add_arguments(self, parser):
        parser.add_argument("name", help="member name (its soft predictions land in backbones/NAME/)")
        parser.add_argument("--kind", choices=KINDS)
        parser.add_argument("--folder", help="nnunetv2: nnUNet_results/DatasetXXX_NAME/TRAINER__PLANS__CONFIGURATION; "
                                             "monai-bundle: the bundle (configs/, models/model.pt)")
        parser.add_argument("--task", choices=["total", "fast"], help="totalsegmentator: the task (default total)")
        parser.add_argument("--label-map", help="JSON (or a shipped map's name): the model's class values or names "
                                                "-> organs (default: class names and aliases; TotalSegmentator: "
                                                "the shipped totalsegmentator map)")
        parser.add_argument("--label-set", default="abdomenatlas")
        parser.add_argument("--folds", nargs="+", help="nnunetv2: folds to ensemble (default: every fold_N found)")
        parser.add_argument("--checkpoint", default="checkpoint_final.pth", help="nnunetv2: checkpoint file name")
        parser.add_argument("--disable-tta", action="store_true", help="nnunetv2: no mirroring test-time augmentation")
        parser.add_argument("--step-size", type=float, default=0.5, help="nnunetv2: sliding-window tile step (0.5)")
        parser.add_argument("--remove", action="store_true", help="unregister: later rounds leave it out")
        parser.add_argument("--source", help="where the model comes from (default: a bundle's metadata)")
        parser.add_argument("--licence", help="its licence (default: a bundle's LICENSE or copyright)")
        parser.add_argument("--citation", help="how to cite it (default: a bundle's references)")

    def handle(self, *args, **options):
        with command_errors():
            if options["remove"]:
                unregister_member(name=options["name"])
                self.stdout.write(f"{options['name']} unregistered: later rounds leave it out")
                return
            if options["kind"] is None:
                raise CommandError(f"--kind is required ({', '.join(KINDS)})")
            done = register_member(name=options["name"], kind=options["kind"], folder=options["folder"],
                                   task=options["task"], label_map=options["label_map"],
                                   label_set=options["label_set"], folds=options["folds"],
                                   checkpoint=options["checkpoint"], disable_tta=options["disable_tta"],
                                   tile_step_size=options["step_size"], source=options["source"],
                                   licence=options["licence"], citation=options["citation"])
        info = done.info
        mapped = ", ".join(f"{info.classes[v]} -> {organ}" for v, organ in info.organ_of.items())
        self.stdout.write(f"{'registered' if done.created else 'updated'} {done.version.name} "
                          f"({done.version.arch}, label set {done.version.metadata['label_set']}): {mapped}")
        unmapped = [name for v, name in info.classes.items() if v not in info.organ_of]
        if unmapped:
            self.stdout.write(f"classes voting on no organ: {', '.join(unmapped)}")
        prov = done.version.metadata["provenance"]
        self.stdout.write(f"source: {prov['source']}; licence: {prov['licence']}; citation: {prov['citation']}")
        self.stdout.write("it joins every round started from now on and is never fine-tuned")
