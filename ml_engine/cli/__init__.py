"""Command line of the ML engine (ml_engine.cli; `python -m ml_engine` runs it): `python -m ml_engine <command> ...`.

Commands:
    phantoms OUT --n N --seed S   write N synthetic CT cases (AbdomenAtlas layout) under OUT
    train --data DIR --arch ARCH --out MODEL.pt [--init PARENT.pt] [--epochs N]   train / fine-tune one network
    infer --ct CT --models A.pt B.pt C.pt --out CASE_DIR   ensemble prediction in the AbdomenAtlas layout
    external --seg SEG --name NAME --out CASE_DIR   another tool's label map as an ensemble member
    attention CASE_DIR   attention heatmaps + attention.json from the models' soft predictions
    priority ROOT --out priority.csv   cases ranked by attention size, organs within each
    evaluate --pred P --ref R   Dice, NSD, HD95, ASSD per organ (+ attention sensitivity / precision)

Each command is one function `cmd_<name>(args) -> int` registered in build_parser(); `main` returns the exit
status (0 success, 1 failure while running, 2 bad arguments, as argparse does).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ml_engine.cli.attention import cmd_attention, cmd_priority
from ml_engine.cli.data import cmd_phantoms
from ml_engine.cli.evaluate import cmd_evaluate
from ml_engine.cli.models import cmd_external, cmd_infer, cmd_train
from ml_engine.cli.types import (
    _learning_rate,
    _non_negative_int,
    _organ,
    _positive_float,
    _positive_int,
    _shape_side,
    _trouble,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml_engine", description="Atlas ML engine commands.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    phantoms = commands.add_parser(
        "phantoms", help="write synthetic abdominal CT cases with organ labels",
        description="Write N synthetic abdominal CT cases as OUT/phantom_NNNN/ct.nii.gz and "
                    "OUT/phantom_NNNN/segmentations/<organ>.nii.gz (AbdomenAtlas layout, abdomenatlas label set).")
    phantoms.add_argument("out", type=Path, metavar="OUT", help="folder to write the cases into (created if absent)")
    phantoms.add_argument("--n", type=_positive_int, required=True, help="number of cases")
    phantoms.add_argument("--seed", type=_non_negative_int, required=True, help="dataset seed (same seed, same data)")
    phantoms.add_argument("--shape", type=_shape_side, nargs=3, metavar=("X", "Y", "Z"), default=None,
                          help="array shape in voxels (default 96 96 64)")
    phantoms.add_argument("--spacing", type=_positive_float, nargs=3, metavar=("SX", "SY", "SZ"), default=None,
                          help="voxel size in mm before the per-case jitter of about 10%% (default 1.5 1.5 2.5)")
    phantoms.add_argument("--organs", type=_organ, nargs="*", metavar="ORGAN", default=None,
                          help="organs to write masks for (default all nine; none given: unlabelled cases)")
    phantoms.add_argument("--troubles", type=_trouble, nargs="*", metavar="TROUBLE", default=None,
                          help="troubles every case carries (default: drawn at random per case; none given: none)")
    phantoms.set_defaults(handler=cmd_phantoms)

    train = commands.add_parser(
        "train", help="train or fine-tune one network on an AbdomenAtlas folder (partial labels allowed)",
        description="Train one network on DIR/CASE/ct.nii.gz + DIR/CASE/segmentations/<organ>.nii.gz (a case may "
                    "label only some organs: its loss covers only those) and write one checkpoint file. With --init, "
                    "fine-tune that checkpoint (its architecture, size, organs and spacing are kept).")
    train.add_argument("--data", type=Path, required=True, metavar="DIR", help="AbdomenAtlas folder of cases")
    train.add_argument("--arch", choices=("swin_unetr", "nnunet", "unet"), default=None,
                       help="architecture (required unless --init)")
    train.add_argument("--size", choices=("tiny", "base"), default="tiny", help="network size (default tiny)")
    train.add_argument("--out", type=Path, required=True, metavar="MODEL.pt", help="checkpoint to write")
    train.add_argument("--init", type=Path, default=None, metavar="PARENT.pt", help="fine-tune this checkpoint")
    train.add_argument("--epochs", type=_positive_int, default=None,
                       help="epochs of one random patch per case each (default: the architecture's step count)")
    train.add_argument("--steps", type=_positive_int, default=None, help="optimiser steps (overrides --epochs)")
    train.add_argument("--lr", type=_learning_rate, default=None, help="learning rate (default per architecture; "
                                                                        "a third of it when fine-tuning)")
    train.add_argument("--organs", type=_organ, nargs="+", default=None, metavar="ORGAN",
                       help="organs of the network (default the nine abdomenatlas organs)")
    train.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    train.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    train.set_defaults(handler=cmd_train)

    infer = commands.add_parser(
        "infer", help="run the ensemble on one CT and write the AbdomenAtlas prediction layout",
        description="Write OUT/backbones/<arch>/soft_pred/<organ>.nii.gz (uint8, p x 255), "
                    "OUT/average/segmentations/<organ>.nii.gz and OUT/average/pseudo_label.nii.gz (mean > 0.5, "
                    "overlaps to the highest mean probability), all on the CT's grid and affine.")
    infer.add_argument("--ct", type=Path, required=True, help="CT volume (.nii.gz)")
    infer.add_argument("--models", type=Path, nargs="+", required=True, metavar="MODEL.pt", help="checkpoints")
    infer.add_argument("--out", type=Path, required=True, metavar="CASE_DIR", help="case folder to write into")
    infer.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda when available)")
    infer.add_argument("--overlap", type=float, default=0.25, help="sliding-window overlap (default 0.25)")
    infer.add_argument("--cpu-runtime", choices=("torch", "openvino"), default="torch",
                       help="how the members run on the CPU: torch (default) or openvino (a one-off conversion of "
                            "seconds, then faster windows)")
    infer.set_defaults(handler=cmd_infer)

    external = commands.add_parser(
        "external", help="add another tool's hard label map to a case as an ensemble member",
        description="Write OUT/backbones/NAME/soft_pred/<organ>.nii.gz (0 or 255) from a multi-label map through a "
                    "label map, then recompute OUT/average/ over every member under OUT/backbones/.")
    external.add_argument("--seg", type=Path, required=True, help="multi-label segmentation (.nii.gz)")
    external.add_argument("--name", required=True, help="member name, e.g. totalsegmentator")
    external.add_argument("--label-map", default="totalsegmentator",
                          help="totalsegmentator (default), abdomenatlas, or a JSON label map file "
                               "({\"labels\": {value: organ}, \"unmapped\": \"background\"})")
    external.add_argument("--out", type=Path, required=True, metavar="CASE_DIR", help="case folder to write into")
    external.add_argument("--ct", type=Path, default=None, help="the case's CT: the map must share its grid")
    external.set_defaults(handler=cmd_external)

    attention = commands.add_parser(
        "attention", help="attention maps of a case from its models' soft predictions (AbdomenAtlas method)",
        description="Read CASE/backbones/<arch>/soft_pred/<organ>.nii.gz (uint8 p x 255, or float in [0, 1]) and write "
                    "CASE/average/attention/<organ>.nii.gz (uint8 heatmap, > 0 exactly on the attention) and "
                    "CASE/average/attention.json (per organ: sizes, hotspots). Defaults are the published ones.")
    attention.add_argument("cases", type=Path, nargs="+", metavar="CASE_DIR", help="case folder(s)")
    attention.add_argument("--std-threshold", type=float, default=0.1, help="inconsistency: std > this (default 0.1)")
    attention.add_argument("--entropy-threshold", type=float, default=0.05,
                           help="uncertainty: entropy > this (default 0.05)")
    attention.add_argument("--entropy", choices=("term", "binary"), default="term",
                           help="term: mean over models of -p ln p (published, default); binary: binary entropy of "
                                "the mean probability")
    opening = attention.add_mutually_exclusive_group()
    opening.add_argument("--opening-voxels", type=_non_negative_int, default=2,
                         help="opening half-width in voxels: erosions, then dilations, 26-connected "
                              "(default 2; 0: none)")
    opening.add_argument("--opening-mm", type=float, default=None,
                         help="opening half-width in mm instead, rounded per axis "
                              "(6 = the published 2 voxels at 3 mm)")
    attention.add_argument("--connectivity", type=int, choices=(6, 18, 26), default=26,
                           help="hotspot connectivity (default 26)")
    attention.add_argument("--full-maps", action="store_true",
                           help="write each heatmap on the CT's whole grid (default: cropped to the organ's attention "
                                "box, the affine shifted so that viewers place it on the CT)")
    attention.add_argument("--max-hotspots", type=_non_negative_int, default=50,
                           help="hotspots listed per organ in attention.json, largest first (default 50)")
    attention.set_defaults(handler=cmd_attention)

    priority = commands.add_parser(
        "priority", help="rank the cases under ROOT by attention size into a CSV",
        description="Read ROOT/<case>/average/attention.json of every case and write one CSV row a case, largest "
                    "total attention first: case, total size, then its organs with attention, largest first.")
    priority.add_argument("root", type=Path, metavar="ROOT", help="folder holding the case folders")
    priority.add_argument("--out", type=Path, required=True, help="CSV file to write")
    priority.add_argument("--by", choices=("ml", "voxels"), default="ml",
                          help="size unit: ml (spacing-aware, default) or voxels (as the published method)")
    priority.set_defaults(handler=cmd_priority)

    evaluate = commands.add_parser(
        "evaluate", help="Dice, NSD, HD95, ASSD per organ (and attention sensitivity / precision)",
        description="Compare a prediction with a reference, organ by organ: Dice, NSD at FLARE's tolerances, HD95 and "
                    "ASSD (DeepMind surface-distance definitions, spacing-aware). P and R are multi-label NIfTI maps "
                    "(values through a label map) or folders of <organ>.nii.gz masks. Prints a table, writes JSON.")
    evaluate.add_argument("--pred", type=Path, required=True, metavar="P", help="predicted segmentation")
    evaluate.add_argument("--ref", type=Path, required=True, metavar="R", help="reference segmentation")
    evaluate.add_argument("--label-map", default=None, metavar="MAP",
                          help="for both multi-label maps: abdomenatlas (default), totalsegmentator, or a JSON label "
                               "map file ({\"labels\": {value: organ}, \"unmapped\": \"background\"})")
    evaluate.add_argument("--pred-label-map", default=None, metavar="MAP", help="label map of P only")
    evaluate.add_argument("--ref-label-map", default=None, metavar="MAP", help="label map of R only")
    evaluate.add_argument("--organs", nargs="+", default=None, metavar="ORGAN", help="evaluate only these organs")
    evaluate.add_argument("--tolerance", action="append", default=[], metavar="ORGAN=MM",
                          help="NSD tolerance of one organ (repeatable; default FLARE's, else 2 mm)")
    evaluate.add_argument("--attention", type=Path, default=None, metavar="DIR",
                          help="attention heatmaps DIR/<organ>.nii.gz: also the component-wise sensitivity and "
                               "precision of the attention against the errors of P (P is then the pseudo-label)")
    evaluate.add_argument("--out", type=Path, default=Path("evaluation.json"),
                          help="JSON file to write (default evaluation.json)")
    evaluate.set_defaults(handler=cmd_evaluate)
    return parser



def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return int(handler(args))

