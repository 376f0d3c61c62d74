"""Recording a round's ensemble output for a case: files into storage, Prediction and OrganAttention rows."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from django.db import transaction

from annotation.models import Case, Organ, OrganAttention, Prediction, Round
from annotation.storage import delete_files, store_file

if TYPE_CHECKING:  # the adapter (torch) is not needed to record files
    from annotation.ml_adapter.inference import OrganAttentionInput


def round_folder(case: Case, round: Round) -> str:
    """Storage prefix of a case's files in a round; inside it, the AbdomenAtlas layout (average/, backbones/)."""
    return f"{Path(case.ct_file.name).parent.as_posix()}/rounds/{round.number}"


def record_prediction(*, case: Case, round: Round, pseudo_label: Path, heatmap: Path | None = None,
                      attention: dict[str, Path] | None = None, soft_pred: dict[str, dict[str, Path]] | None = None,
                      organs: Iterable[OrganAttentionInput] = (),
                      stored_soft_pred: dict[str, dict[str, str]] | None = None,
                      votes_manifest: str = "") -> Prediction:
    """Store the files of one case's prediction in a round and replace its rows; all or nothing.

    pseudo_label: multi-label map; heatmap: max-over-organs attention; attention: organ -> heatmap file;
    soft_pred: arch -> organ -> uint8 probability file. Paths are local files on the case's grid. stored_soft_pred:
    arch -> organ -> storage name of soft predictions stored already (the split inference's infer job stored them);
    votes_manifest: the storage name of their list (files["votes"]: a row names it, so reconcile_media keeps it).
    """
    prefix = round_folder(case, round)
    names = {organ: Organ.objects.get(label_set=case.dataset.label_set_id, name=organ).pk for organ in
             {a.organ for a in organs} | set(attention or {})}
    written: list[str] = []
    try:
        with transaction.atomic():
            stored = {arch: dict(names) for arch, names in (stored_soft_pred or {}).items()}
            files: dict = {"attention": {}, "soft_pred": stored}
            if votes_manifest:
                files["votes"] = votes_manifest
            written.append(store_file(f"{prefix}/average/pseudo_label.nii.gz", pseudo_label))
            heatmap_name = ""
            if heatmap is not None:
                heatmap_name = store_file(f"{prefix}/average/attention.nii.gz", heatmap)
                written.append(heatmap_name)
            for organ, path in (attention or {}).items():
                files["attention"][organ] = store_file(f"{prefix}/average/attention/{organ}.nii.gz", path)
                written.append(files["attention"][organ])
            for arch, per_organ in (soft_pred or {}).items():
                for organ, path in per_organ.items():
                    name = store_file(f"{prefix}/backbones/{arch}/soft_pred/{organ}.nii.gz", path)
                    files["soft_pred"].setdefault(arch, {})[organ] = name
                    written.append(name)
            prediction, _ = Prediction.objects.update_or_create(
                case=case, round=round,
                defaults={"pseudo_label": written[0], "heatmap": heatmap_name, "files": files})
            OrganAttention.objects.filter(case=case, round=round).delete()
            OrganAttention.objects.bulk_create([
                OrganAttention(case=case, round=round, organ_id=names[a.organ], size_ml=a.size_ml, voxels=a.voxels,
                               hotspots=a.hotspots) for a in organs])
    except BaseException:
        delete_files(written)
        raise
    return prediction
