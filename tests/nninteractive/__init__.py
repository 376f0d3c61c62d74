"""A model folder in nnInteractive's own format, generated here (the real weights cannot be downloaded on this
project's machines), so that the tests run nnInteractive's real loading and inference code.

What `write_tiny_folder` writes is what a released nnInteractive model folder holds (the package's
`_load_model_artifacts_from_disk` reads each of them):

- `plans.json`: nnU-Net v2 plans with one configuration whose network is nnU-Net's ResidualEncoderUNet (the
  architecture family of the released checkpoint), made tiny: 3 stages of 4, 8, 16 features, patch 64^3;
- `dataset.json`: one CT channel, labels background / foreground (nnInteractive is always binary);
- `inference_info.json`: the capability file (inference class, interaction channels and their mapping, point radius,
  scribble thickness, interaction decay, image padding), with the legacy defaults' channel layout;
- `LICENSE`: its first line is the licence identifier the session reports;
- `fold_0/checkpoint_final.pth`: the keys the loader reads (`network_weights`, `trainer_name`, `init_args`), as
  `cleanse_checkpoint_for_release` leaves them (no optimizer state; trainer `nnInteractiveTrainer_stub`), with the
  network built by the package's own stub trainer (nnU-Net's builder) and seeded random weights.

The weights are random: the masks it returns mean nothing, only that the code path runs end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

CONFIGURATION = "3d_tiny_ps64"
PATCH = [64, 64, 64]  # nnInteractive refines with a 24-voxel margin a side: a patch above 48
INTERACTION_CHANNELS = 6  # + prev_seg: 7 interaction inputs, beside 1 image channel


def plans() -> dict:
    arch = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
        "arch_kwargs": {
            "n_stages": 3, "features_per_stage": [4, 8, 16], "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
            "n_blocks_per_stage": [1, 1, 1], "n_conv_per_stage_decoder": [1, 1], "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True}},
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    return {
        "dataset_name": "Dataset999_AtlasTinyInteractive", "plans_name": "nnUNetResEncUNetPlans",
        "original_median_spacing_after_transp": [1.0, 1.0, 1.0], "original_median_shape_after_transp": [32, 32, 32],
        "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "configurations": {CONFIGURATION: {
            "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": PATCH, "median_image_size_in_voxels": [32, 32, 32],
            "spacing": [1.0, 1.0, 1.0], "normalization_schemes": ["ZScoreNormalization"],
            "use_mask_for_norm": [False], "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                   "force_separate_z": None},
            "architecture": arch, "batch_dice": True}},
        "experiment_planner_used": "written by tests/nninteractive (Atlas)", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 3071.0, "mean": 40.0, "median": 40.0, "min": -1024.0, "percentile_00_5": -1000.0,
            "percentile_99_5": 1500.0, "std": 300.0}},
    }


def capability() -> dict:
    return {
        "inference_class": "nnInteractiveInferenceSession", "inference_class_min_version": "2.0.0",
        "supported_interactions": {"scribble": True, "lasso": True, "points": True, "bbox2d": True, "bbox3d": False},
        "supports_initial_label": True, "supports_zero_shot_label_refinement": True,
        "interaction_channels": INTERACTION_CHANNELS,
        "channel_mapping": {"prev_seg": 0, "bbox2d": [1, 2], "lasso": [1, 2], "points": [3, 4], "scribble": [5, 6]},
        "point_radius": 4, "preferred_scribble_thickness": [2, 2, 2], "interaction_decay": 0.98,
        "pad_mode_image": "constant",
    }


def write_tiny_folder(root: Path, *, seed: int = 0, licence: str = "CC BY-NC-SA 4.0") -> Path:
    """A complete nnInteractive model folder under root (random weights); returns the folder."""
    from nnInteractive.trainer.nnInteractiveTrainer import nnInteractiveTrainer_stub
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    folder = Path(root) / f"nnInteractiveTrainer_stub__nnUNetResEncUNetPlans__{CONFIGURATION}"
    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    the_plans = plans()
    (folder / "plans.json").write_text(json.dumps(the_plans, indent=1))
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "foreground": 1}, "numTraining": 0,
        "file_ending": ".nii.gz"}, indent=1))
    (folder / "inference_info.json").write_text(json.dumps(capability(), indent=1))
    (folder / "LICENSE").write_text(f"{licence}\nhttps://creativecommons.org/licenses/by-nc-sa/4.0/\n")
    manager = PlansManager(the_plans)
    torch.manual_seed(seed)
    network = nnInteractiveTrainer_stub.build_network_architecture(
        manager, manager.get_configuration(CONFIGURATION), 1 + INTERACTION_CHANNELS + 1, 2,
        enable_deep_supervision=False)
    torch.save({"network_weights": network.state_dict(), "trainer_name": "nnInteractiveTrainer_stub",
                "init_args": {"plans": the_plans, "configuration": CONFIGURATION, "fold": 0},
                "current_epoch": 1, "inference_allowed_mirroring_axes": (0, 1, 2)},
               folder / "fold_0" / "checkpoint_final.pth")
    return folder
