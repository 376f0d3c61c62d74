"""python manage.py register_start --arch swin_unetr|unet|nnunet --weights FILE [--size base]
[--format suprem|monai-bundle|atlas] [--label-map MAP] [--source S --licence L --citation C]"""

from django.core.management.base import BaseCommand

from annotation.errors import command_errors
from annotation.services.starts import ARCHITECTURES, FORMATS, SIZES, register_start


class Command(BaseCommand):
    help = ("Start an architecture of the ensemble from published weights: a SuPreM checkpoint (AbdomenAtlas 1.1), a "
            "MONAI bundle (its folder or models/model.pt; its configs are read as data, never run) or an Atlas "
            "checkpoint. Every key is mapped into the publisher's network, the output head through a label map "
            "(re-initialised for organs no class maps to), and the publisher's spacing, patch and window are "
            "recorded beside the weights. The next round 0 fine-tunes it (or takes it as it is without labels).")

    def add_arguments(self, parser):
        parser.add_argument("--arch", required=True, choices=ARCHITECTURES,
                            help="the ensemble's slot; nnunet takes SuPreM's SegResNet (SuPreM publishes no nnU-Net)")
        parser.add_argument("--weights", required=True, help="the checkpoint file (a bundle: its folder)")
        parser.add_argument("--size", default="base", choices=SIZES)
        parser.add_argument("--format", default="suprem", choices=FORMATS)
        parser.add_argument("--label-map", help="the checkpoint's classes -> organs (default: the shipped `suprem` "
                                                "map for SuPreM; a bundle's class names; e.g. `btcv`)")
        parser.add_argument("--label-set", default="abdomenatlas")
        parser.add_argument("--patch", type=int, nargs=3, metavar=("X", "Y", "Z"),
                            help="training and sliding-window patch instead of the publisher's (a GPU with less "
                                 "memory; Swin UNETR: multiples of 32)")
        parser.add_argument("--source", help="where the weights come from (default: the publisher's)")
        parser.add_argument("--licence", help="their licence (default: the publisher's, as far as known)")
        parser.add_argument("--citation", help="how to cite them (default: the publisher's paper)")

    def handle(self, *args, **options):
        with command_errors():
            done = register_start(arch=options["arch"], weights=options["weights"], size=options["size"],
                                  format=options["format"], label_map=options["label_map"],
                                  label_set=options["label_set"], source=options["source"],
                                  licence=options["licence"], citation=options["citation"],
                                  patch=tuple(options["patch"]) if options["patch"] else None)
        meta = done.version.metadata
        self.stdout.write(f"{'registered' if done.created else 'replaced'} {done.version.name}: "
                          f"spacing {meta['spacing']} mm, patch {meta['patch']}, window {meta['hu_window']} HU")
        for line in done.report:
            self.stdout.write(f"  {line}")
        prov = meta["provenance"]
        self.stdout.write(f"source: {prov['source']}; licence: {prov['licence']}; citation: {prov['citation']}")
        self.stdout.write(f"the next round 0 of label set {meta['label_set']} starts {done.version.arch} from it "
                          f"(start_round --size {done.version.size})")
