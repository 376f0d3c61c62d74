"""The MONAI Label protocol under /monailabel/, driven by the stock client (`monailabel.client.MONAILabelClient`,
installed without its dependencies by the Makefile) against a live server, as 3D Slicer's module drives it: token
sign-in, info, next sample, a plain GET of the image with no auth header, infer, and a label saved as NRRD with
Slicer's own segment numbering in `label_info`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import quote_plus

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from annotation.models import Revision, Round, Task
from annotation.storage import read_voxels
from tests.api.conftest import PASSWORD, SHAPE, build_world
from tests.conftest import affine_for, import_or_skip

client_module = import_or_skip("monailabel.client", reason="make venv installs monailabel's client (--no-deps)",
                               switch="ATLAS_REQUIRE_MONAILABEL_CLIENT")
MONAILabelClient = client_module.MONAILabelClient
ClientError = client_module.client.MONAILabelClientException

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(tmp_path, settings, live_server):
    return build_world(tmp_path, {"mid": 30.0, "big": 50.0, "small": 10.0})


def signed_in(live_server, tmp_path, username: str = "a1") -> MONAILabelClient:
    client = MONAILabelClient(live_server.url + "/monailabel", tmpdir=str(tmp_path), client_id="slicer")
    assert client.auth_enabled()
    client.update_auth(client.auth_token(username, PASSWORD))
    assert client.auth_valid_token()
    return client


def save_nrrd(path, data: np.ndarray, affine: np.ndarray):
    """data (x, y, z) on the RAS+ affine, written as NRRD the way ITK (and so Slicer) writes it: LPS, gzip."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    lps = np.diag([-1.0, -1.0, 1.0])
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps @ affine[:3, :3] / spacing).ravel().tolist())
    image.SetOrigin((lps @ affine[:3, 3]).tolist())
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def plain_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url) as answer:  # no Authorization header, as Slicer's SampleData download
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_a_slicer_session_through_the_queue(world, live_server, tmp_path):
    client = signed_in(live_server, tmp_path)
    info = client.info()
    assert info["labels"]["liver"] == 5 and info["labels"]["spleen"] == 1
    assert list(info["strategies"]) == ["attention"]
    assert info["models"]["atlas"]["type"] == "segmentation" and "config" not in info

    # the same queue as POST /api/tasks/next/: the largest attention first, no double lease, the held task renewed
    sample = client.next_sample("attention", {})
    task = world.task("big")
    task.refresh_from_db()
    assert sample["case"] == "big" and task.status == Task.Status.LEASED and task.lease_holder == world.users["a1"]
    assert world.client("a2").post("/api/tasks/next/").json()["case"]["name"] == "mid"
    assert client.next_sample("attention", {})["case"] == "big"
    assert sample["name"].endswith(".nii.gz")

    # Slicer's download carries no auth header: the image id opens the CT, and nothing else does
    image_url = f"{live_server.url}/monailabel/datastore/image?image={quote_plus(sample['id'])}"
    status, body = plain_get(image_url)
    ct_file = world.cases["big"].ct_file
    with ct_file.open("rb") as handle:
        assert status == 200 and body == handle.read()
    forged = sample["id"][:-3] + ("AAA" if not sample["id"].endswith("AAA") else "BBB")
    assert plain_get(f"{live_server.url}/monailabel/datastore/image?image={quote_plus(forged)}")[0] == 404
    assert plain_get(f"{live_server.url}/monailabel/datastore/image")[0] == 400
    assert plain_get(f"{live_server.url}/api/cases/{world.cases['big'].pk}/ct.nii.gz")[0] in (401, 403)

    # infer: the label to correct (here the pseudo-label), with the names of the values it holds
    result_file, params = client.infer("atlas", sample["id"], {})
    assert np.array_equal(np.asarray(nib.load(result_file).dataobj), world.pseudo)
    assert params["label_names"] == {"spleen": 1, "liver": 5} and params["base_revision"] is None

    # Slicer numbers segments in its own order and names them in label_info; the file is NRRD
    mine = np.zeros(SHAPE, dtype=np.uint8)
    mine[4:9, 5:12, 3:8] = 1  # Slicer's segment 1: "Liver" (a display name; an alias of liver)
    mine[12:16, 5:12, 3:8] = 2  # segment 2: spleen
    label = save_nrrd(tmp_path / "label.nrrd", mine, affine_for())
    label_info = [{"name": "Liver", "idx": 1}, {"name": "spleen", "idx": 2}, {"name": "aorta", "idx": 3}]
    saved = client.save_label(sample["id"], str(label), tag="final", params={"label_info": label_info})
    revision = Revision.objects.get(pk=saved["revision"])
    stored = read_voxels(revision.label_file.name)
    assert revision.author == world.users["a1"] and revision.parent is None and revision.task == task
    assert revision.seconds_spent > 0  # from the lease to the save: Slicer reports no time
    assert np.array_equal(stored, np.where(mine == 1, 5, np.where(mine == 2, 1, 0)))
    task.refresh_from_db()
    assert task.status == Task.Status.REVISED and task.lease_holder is None

    # saving again on the same id is a stale save: 409, nothing stored
    with pytest.raises(ClientError) as stale:
        client.save_label(sample["id"], str(label), tag="final", params={"label_info": label_info})
    assert "Status: 409" in stale.value.msg
    assert Revision.objects.filter(case=world.cases["big"]).count() == 1
    # and the image link no longer opens the CT once the lease is gone
    assert plain_get(image_url)[0] == 403

    # the next sample goes on down the queue
    second = client.next_sample("attention", {})
    assert second["case"] == "small"


def test_the_label_to_correct_is_the_latest_revision(world, live_server, tmp_path):
    """A case revised in one round comes back in the next: infer gives that revision, and the save builds on it."""
    client = signed_in(live_server, tmp_path)
    first = client.next_sample("attention", {})
    mine = world.pseudo.copy()
    mine[4:9, 5:12, 3:8] = 5
    path = tmp_path / "r1.nii.gz"
    nib.save(nib.Nifti1Image(mine, affine_for()), str(path))
    r1 = client.save_label(first["id"], str(path))["revision"]  # no label_info: the label set's own values
    round1 = Round.objects.create(number=1, status=Round.Status.ANNOTATING, label_set=world.round.label_set)
    Task.objects.create(case=world.cases["big"], round=round1, priority=1000.0)

    again = client.next_sample("attention", {})
    assert again["case"] == "big" and again["id"] != first["id"]
    result_file, params = client.infer("atlas", again["id"], {})
    assert np.array_equal(np.asarray(nib.load(result_file).dataobj), mine)
    assert params["base_revision"] == r1 and params["source"] == "revision"
    mine[12:16, 5:12, 3:8] = 1
    nib.save(nib.Nifti1Image(mine, affine_for()), str(path))
    r2 = Revision.objects.get(pk=client.save_label(again["id"], str(path))["revision"])
    assert r2.parent_id == r1 and r2.number == 2 and np.array_equal(read_voxels(r2.label_file.name), mine)


def test_refusals_name_the_problem(world, live_server, tmp_path, settings):
    client = signed_in(live_server, tmp_path)
    sample = client.next_sample("attention", {})
    good = np.zeros(SHAPE, dtype=np.uint8)
    good[4:9, 5:12, 3:8] = 1

    def refused(path, label_info) -> str:
        with pytest.raises(ClientError) as error:
            client.save_label(sample["id"], str(path), params={"label_info": label_info})
        return error.value.msg

    nrrd = save_nrrd(tmp_path / "l.nrrd", good, affine_for())
    message = refused(nrrd, [{"name": "tumour", "idx": 1}])
    assert "Status: 400" in message and "'tumour'" in message and "not organs of the label set" in message
    message = refused(nrrd, [{"name": "liver", "idx": 2}])
    assert "Status: 400" in message and "label values 1 have no segment" in message
    other_grid = save_nrrd(tmp_path / "g.nrrd", good, affine_for(spacing=(1.0, 1.5, 2.5)))
    message = refused(other_grid, [{"name": "liver", "idx": 1}])
    assert "Status: 400" in message and "different grid" in message
    text = tmp_path / "label.txt"
    text.write_text("not an image")
    assert "is not NIfTI or NRRD" in refused(text, [])
    with pytest.raises(ClientError) as error:
        client.save_label(sample["id"], str(nrrd), tag="original", params={"label_info": [{"name": "liver", "idx": 1}]})
    assert "Status: 400" in error.value.msg and "final labels only" in error.value.msg
    settings.ATLAS_MAX_UPLOAD_BYTES = 100  # smaller than this request
    assert "Status: 413" in refused(nrrd, [{"name": "liver", "idx": 1}])
    settings.ATLAS_MAX_UPLOAD_BYTES = 512 * 1024**2
    assert not Revision.objects.exists()

    # the same grid in another voxel order (x flipped, as another converter writes it) is reordered and stored
    flipped = affine_for() @ np.array([[-1, 0, 0, SHAPE[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    path = tmp_path / "flipped.nii.gz"
    nib.save(nib.Nifti1Image(good[::-1].copy(), flipped), str(path))
    saved = client.save_label(sample["id"], str(path), params={"label_info": [{"name": "liver", "idx": 1}]})
    assert np.array_equal(read_voxels(Revision.objects.get(pk=saved["revision"]).label_file.name), good * 5)

    # another user's id, an unknown strategy or model, and the protocol's other endpoints: clear answers
    other = signed_in(live_server, tmp_path, "a2")
    with pytest.raises(ClientError) as error:
        other.infer("atlas", sample["id"], {})
    assert "Status: 403" in error.value.msg and "another user" in error.value.msg
    with pytest.raises(ClientError) as error:
        client.next_sample("random", {})
    assert "Status: 404" in error.value.msg and "'attention'" in error.value.msg
    assert client.train_status(check_if_running=True) is False
    with pytest.raises(ClientError) as error:
        client.train_start("atlas", {})
    assert "Status: 404" in error.value.msg and "training runs in Atlas's rounds" in error.value.msg


def test_signed_out_and_roleless_clients_are_refused(world, live_server, tmp_path):
    anonymous = MONAILabelClient(live_server.url + "/monailabel", tmpdir=str(tmp_path))
    with pytest.raises(ClientError) as error:
        anonymous.info()
    assert error.value.status_code == 401
    with pytest.raises(ClientError) as error:
        anonymous.auth_token("a1", "wrong password")
    assert error.value.status_code == 400
    roleless = signed_in(live_server, tmp_path, "nobody")
    with pytest.raises(ClientError) as error:
        roleless.next_sample("attention", {})
    assert error.value.status_code == 403
    assert not Task.objects.filter(status=Task.Status.LEASED).exists()


def test_the_image_link_expires(world, live_server, tmp_path, settings):
    client = signed_in(live_server, tmp_path)
    sample = client.next_sample("attention", {})
    settings.ATLAS_MONAILABEL_LINK_MINUTES = 0
    status, body = plain_get(f"{live_server.url}/monailabel/datastore/image?image={quote_plus(sample['id'])}")
    assert status == 403 and "expired" in json.loads(body)["detail"]


def test_slicer_clicks_through_the_click_model(world, live_server, tmp_path):
    client = signed_in(live_server, tmp_path)
    model = client.info()["models"]["atlas_click"]
    assert model["type"] == "deepedit" and model["labels"]["liver"] == 5 and model["config"]["licence"]
    sample = client.next_sample("attention", {})
    # DeepGrow's keys: the current segment and its foreground / background points (IJK of the downloaded image)
    params = {"label": "liver", "foreground": [[8, 10, 6]], "background": [[20, 3, 2]]}
    result_file, answer = client.infer("atlas_click", sample["id"], params)
    label = np.asarray(nib.load(result_file).dataobj)
    assert label.shape == SHAPE and set(np.unique(label)) <= {0, 1, 5}
    assert answer["organ"] == "liver" and answer["engine"]["name"] == "atlas-click"
    before, after = world.pseudo == 5, label == 5
    assert int((before != after).sum()) == answer["changed"]
    assert after[8, 10, 6] and not after[20, 3, 2]
    # DeepEdit's keys: the points under the segment's own name
    _, again = client.infer("atlas_click", sample["id"], {"label": "liver", "liver": [[8, 10, 6]]})
    assert again["organ"] == "liver"
    for bad, words in (({"foreground": [[8, 10, 6]]}, "params.label"),
                       ({"label": "heart", "foreground": [[8, 10, 6]]}, "not an organ"),
                       ({"label": "liver"}, "no points"),
                       ({"label": "liver", "foreground": [[80, 10, 6]]}, "outside the image")):
        with pytest.raises(ClientError) as refused:
            client.infer("atlas_click", sample["id"], bad)
        assert "Status: 400" in refused.value.msg and words in refused.value.msg
    # another user's id is refused before any model runs
    other = signed_in(live_server, tmp_path, "a2")
    with pytest.raises(ClientError) as refused:
        other.infer("atlas_click", sample["id"], params)
    assert "Status: 403" in refused.value.msg
