"""A round's ensemble outside the job pipeline: refresh predictions with the current models, and add another tool's
predictions (TotalSegmentator, an nnU-Net run) as a member of the ensemble.

Both write a case's prediction through record_prediction (all or nothing per case) and then re-rank the round's
queue; leases in progress and revisions are untouched.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.core.files.storage import default_storage
from django.db import transaction

from annotation.errors import Invalid, engine_refusals
from annotation.ml_adapter import inference
from annotation.ml_adapter.members import external_label_name
from annotation.models import Case, LabelSet, ModelVersion, Prediction, Round
from annotation.selectors.labels import open_cases
from annotation.selectors.rounds import annotating_round, cases_to_infer, current_round
from annotation.services.imports.labels import LabelMap, LabelMapError, OrganIndex, convert_multilabel
from annotation.services.members import check_member_name
from annotation.services.predictions import record_prediction, round_folder
from annotation.services.queue import rebuild_tasks
from annotation.storage import read_volume, store_file
from ml_engine.ensemble import member_votes
from ml_engine.io import ImageError, load_nifti, write_nifti

Progress = Callable[[int, int, str], None]  # (done, total, case name)
_SUFFIXES = (".nii.gz", ".nii")


def predict_case(case: Case, round: Round) -> Prediction:
    """Run the round's ensemble on one case and record the prediction (replacing an earlier one): one step."""
    with tempfile.TemporaryDirectory(prefix="atlas-infer-") as tmp:
        files = inference.infer_case(case=case, versions=list(round.members.all()), workdir=Path(tmp))
        return _record(case, round, files)


# Split inference (with GPU workers): the GPU worker only runs the members and stores their votes (stage_case); a
# light job on the default queue combines them, writes the pseudo-label and attention and records them (attend_case).


def votes_manifest(case: Case, round: Round) -> str:
    """Storage name of the list of a case's stored votes in a round, written last by stage_case."""
    return f"{round_folder(case, round)}/backbones/votes.json"


def stage_case(case: Case, round: Round) -> dict[str, dict[str, str]]:
    """Run the round's ensemble on one case and store only its members' votes (uint8, fast gzip) where the
    prediction keeps them, then their manifest (so attend_case never sees half of them). Returns member -> organ ->
    storage name."""
    prefix = round_folder(case, round)
    with tempfile.TemporaryDirectory(prefix="atlas-stage-") as tmp:
        members, _, affine = inference.case_members(case, list(round.members.all()))
        local = inference.write_votes(members, affine=affine, workdir=Path(tmp))
        names = {member: {organ: store_file(f"{prefix}/backbones/{member}/soft_pred/{organ}.nii.gz", path)
                          for organ, path in per_organ.items()} for member, per_organ in local.items()}
        manifest = Path(tmp) / "votes.json"
        manifest.write_text(json.dumps(names, sort_keys=True))
        store_file(votes_manifest(case, round), manifest)
    return names


def attend_case(case: Case, round: Round) -> Prediction:
    """Combine the votes stage_case stored, write the pseudo-label and attention, record the prediction."""
    name = votes_manifest(case, round)
    if not default_storage.exists(name):
        raise Invalid(f"{name}: no stored votes of case {case.name} in round {round.number}; its infer job "
                      "stores them first")
    with default_storage.open(name, "rb") as handle:
        names = json.loads(handle.read())
    label_set = case.dataset.label_set
    with tempfile.TemporaryDirectory(prefix="atlas-attend-") as tmp:
        files = inference.write_ensemble(inference.stored_members(names, organs=label_set.organ_names()),
                                          values=label_set.organ_values(), shape=tuple(case.shape),
                                          affine=np.asarray(case.affine, dtype=float), workdir=Path(tmp),
                                          write_soft=False)
        return record_prediction(case=case, round=round, pseudo_label=files.pseudo_label, heatmap=files.heatmap,
                                 attention=files.attention, organs=files.organs, stored_soft_pred=names,
                                 votes_manifest=name)


def _record(case: Case, round: Round, files) -> Prediction:
    return record_prediction(case=case, round=round, pseudo_label=files.pseudo_label, heatmap=files.heatmap,
                             attention=files.attention, soft_pred=files.soft_pred, organs=files.organs)


@dataclass
class RefreshReport:
    round: int
    inferred: list[str] = field(default_factory=list)
    tasks: int = 0


def refresh_predictions(*, round: Round, case_names: Sequence[str] | None = None,
                        progress: Progress | None = None) -> RefreshReport:
    """Infer again, with the round's current members, the named cases (default: every case not final); re-rank."""
    cases = cases_to_infer(round)
    if case_names:
        found = {c.name: c for c in cases.filter(name__in=case_names)}
        missing = [n for n in case_names if n not in found]
        if missing:
            raise Invalid(f"no case to infer named {', '.join(missing)} in round {round.number} "
                          "(unknown, another label set, or final)", field="cases")
        cases = [found[n] for n in dict.fromkeys(case_names)]
    cases = list(cases)
    if not round.members.exists():
        raise Invalid(f"round {round.number} has no models")
    report = RefreshReport(round=round.number)
    for i, case in enumerate(cases):
        predict_case(case, round)
        report.inferred.append(case.name)
        if progress is not None:
            progress(i + 1, len(cases), case.name)
    report.tasks = rebuild_tasks(round=round)
    return report


@dataclass
class ExternalReport:
    round: int | None  # None: no round yet (or the last one failed): the member joins the next round
    model: str
    imported: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "FILE: problem"
    without_prediction: list[str] = field(default_factory=list)  # cases of the round the folder does not cover
    tasks: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def _prediction_files(src: Path) -> dict[str, Path]:
    """Case name -> label map file in src: NAME.nii.gz / NAME.nii, or NAME/ holding one NIfTI file."""
    found: dict[str, Path] = {}
    for path in sorted(src.iterdir()):
        if path.is_file() and (suffix := next((s for s in _SUFFIXES if path.name.endswith(s)), None)):
            found[path.name[: -len(suffix)]] = path
        elif path.is_dir():
            inner = [p for p in sorted(path.iterdir()) if p.is_file() and p.name.endswith(_SUFFIXES)]
            if len(inner) == 1:
                found[path.name] = inner[0]
    return found


def _target_round(number: int | None) -> Round | None:
    """The round imported predictions join now: the given one or the latest, which must be annotating; None when
    there is no round yet or the latest one failed or was cancelled (the member then joins the next round)."""
    if number is None:
        latest = current_round()
        if latest is None or latest.status in (Round.Status.FAILED, Round.Status.CANCELLED):
            return None
    return annotating_round(number)


def import_predictions(*, model: str, src: str | Path, label_map: str | Path | None = None,
                       round_number: int | None = None, label_set: str = "abdomenatlas",
                       progress: Progress | None = None) -> ExternalReport:
    """Add another tool's label maps (one per case, in src) as the ensemble member `model` of the current round, or,
    before any round, of the next one (round 0 can be made of such members alone).

    Each file is checked against its case's CT (shape, affine) and translated with the label map (default: the
    label set's own values). In an annotating round the case's ensemble is then averaged again with this member (its
    votes are 0 or 255 per organ), which refreshes its pseudo-label and attention, and the queue is re-ranked at the
    end; before any round the votes are only stored. label_set: the cases' label set when there is no round (else
    the round's). Bad files are reported ("FILE: problem") and skipped; good ones import. Re-importing a model
    replaces its votes.
    """
    src = Path(src)
    check_member_name(model, kind=ModelVersion.Arch.EXTERNAL)
    if not src.is_dir():
        raise Invalid(f"{src}: not a folder")
    round = _target_round(round_number)
    labels = round.label_set if round is not None else LabelSet.objects.filter(name=label_set).first()
    if labels is None:
        raise Invalid(f"label set {label_set!r} does not exist", field="label_set")
    organs = labels.organ_index()
    with engine_refusals():
        mapping = LabelMap.load(label_map, organs) if label_map is not None else None
    covered = sorted(mapping.organs_covered(organs) if mapping else organs.values, key=organs.values.get)
    files = _prediction_files(src)
    if not files:
        raise Invalid(f"{src}: no .nii.gz or .nii label maps (expected CASE.nii.gz or CASE/<one file>)")
    pool = cases_to_infer(round) if round is not None else open_cases(Case.objects.filter(dataset__label_set=labels))
    cases = {c.name: c for c in pool.select_related("dataset__label_set")}
    where = f"round {round.number}" if round is not None else f"label set {labels.name}"
    report = ExternalReport(round=round.number if round is not None else None, model=model)
    report.without_prediction = sorted(set(cases) - set(files))
    with transaction.atomic():
        version, _ = ModelVersion.objects.update_or_create(
            name=model, defaults={"arch": ModelVersion.Arch.EXTERNAL, "size": "", "checkpoint": "",
                                  "metadata": {"organs": covered, "source": str(src.resolve()),
                                               "label_map": str(label_map) if label_map else None,
                                               "label_set": labels.name}})
        if round is not None:
            round.members.add(version)
    for i, (name, path) in enumerate(files.items()):
        case = cases.get(name)
        if case is None:
            report.errors.append(f"{path}: no case named {name!r} to predict in {where}")
        else:
            try:
                _import_one(case, round, version, path, organs, mapping)
                report.imported.append(name)
            except (ImageError, LabelMapError) as exc:
                report.errors.append(str(exc))
        if progress is not None:
            progress(i + 1, len(files), name)
    if round is not None:
        report.tasks = rebuild_tasks(round=round)
    return report


def _import_one(case: Case, round: Round | None, version: ModelVersion, path: Path, organs: OrganIndex,
                mapping: LabelMap | None) -> None:
    """Check and translate one label map, average it into the case's ensemble, record both; all or nothing.
    Without a round only the translated label map (the member's vote for later rounds) is stored."""
    ct = read_volume(case.ct_file.name)
    label, _ = convert_multilabel(load_nifti(path), ct, path, organs=organs, label_map=mapping)
    if round is None:
        with tempfile.TemporaryDirectory(prefix="atlas-external-") as tmp:
            store_file(external_label_name(case, version.name),
                       write_nifti(Path(tmp) / "label.nii.gz", label, ct.affine, dtype=np.uint8))
        return
    names = organs.organs
    votes = member_votes(label, organs.values, version.metadata.get("organs") or names)
    prediction = Prediction.objects.filter(case=case, round=round).first()
    if prediction is None:
        members = ((organ, {version.name: votes[organ]} if organ in votes else {}) for organ in names)
    else:
        members = ((organ, soft | ({version.name: votes[organ]} if organ in votes else {}))
                   for organ, soft in inference.stored_members((prediction.files or {}).get("soft_pred", {}),
                                                                organs=names, exclude=version.name))
    with tempfile.TemporaryDirectory(prefix="atlas-external-") as tmp:
        files = inference.write_ensemble(members, values=organs.values, shape=ct.shape, affine=ct.affine,
                                          workdir=Path(tmp) / "out")
        local = write_nifti(Path(tmp) / "label.nii.gz", label, ct.affine, dtype=np.uint8)
        with transaction.atomic():
            _record(case, round, files)
            # the vote itself, for later rounds' inference; stored inside the transaction, so a failure here
            # rolls back the prediction too
            store_file(external_label_name(case, version.name), local)
