"""python train.py DatasetXXX_NAME: nnU-Net's trainer (nnUNetTrainer_AtlasTiny) on the preprocessed dataset, fold
'all', on the CPU (or CUDA when there is one): what `nnUNetv2_train ID 3d_fullres all -tr nnUNetTrainer_AtlasTiny`
does after finding the trainer class (see __init__.py for why the class is given here)."""

import os
import sys

import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnUNetTrainer_AtlasTiny import nnUNetTrainer_AtlasTiny

dataset = sys.argv[1]
base = os.path.join(os.environ["nnUNet_preprocessed"], dataset)
plans = {**load_json(os.path.join(base, "nnUNetPlans.json")), "continue_training": False}
trainer = nnUNetTrainer_AtlasTiny(plans=plans, configuration="3d_fullres", fold="all",
                                  dataset_json=load_json(os.path.join(base, "dataset.json")),
                                  device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
trainer.run_training()
