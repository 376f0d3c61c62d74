"""Train (or load) Atlas's click model on phantoms and print its Dice after 0, 1, 3 and 5 simulated clicks on
held-out phantoms: the recipe of the shipped `ml_engine/checkpoints/click_unet_tiny.pt`.

    python benchmarks/bench_click_model.py --steps 4000 --save ml_engine/checkpoints/click_unet_tiny.pt
    python benchmarks/bench_click_model.py --load ml_engine/checkpoints/click_unet_tiny.pt

Training phantoms: seeds 1000-1019 (the members' own); held out: 5000-5004 (one sample per organ, its starting
label a seeded degradation of the truth: ml_engine.interactive.simulate.degrade).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from ml_engine.interactive import (  # noqa: E402
    SPACING,
    ClickTrainConfig,
    load_click_checkpoint,
    save_click_checkpoint,
    train_click_model,
    validation_samples,
    with_validation,
)
from ml_engine.labels import ORGANS  # noqa: E402
from ml_engine.phantoms import make_phantom, organ_value  # noqa: E402
from ml_engine.train.cases import make_train_case  # noqa: E402


def phantom_case(seed: int):
    phantom = make_phantom(seed)
    masks = {organ: phantom.labels == organ_value(organ) for organ in ORGANS}
    return make_train_case(phantom.name, phantom.ct, phantom.affine, masks, ORGANS, SPACING)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--train-seeds", type=int, nargs=2, default=(1000, 1020), metavar=("FIRST", "STOP"))
    parser.add_argument("--held-seeds", type=int, nargs=2, default=(5000, 5005), metavar=("FIRST", "STOP"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save", type=Path, help="write the trained checkpoint here (float16 weights)")
    parser.add_argument("--load", type=Path, help="evaluate this checkpoint instead of training")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    held = [phantom_case(s) for s in range(*args.held_seeds)]
    if args.load:
        checkpoint = load_click_checkpoint(args.load)
    else:
        cases = [phantom_case(s) for s in range(*args.train_seeds)]
        started = time.perf_counter()

        def progress(step: int, total: int, loss: float) -> None:
            print(f"\rstep {step}/{total} loss {loss:.3f} ({time.perf_counter() - started:.0f} s)", end="",
                  flush=True)

        checkpoint = train_click_model(cases, organs=ORGANS, config=ClickTrainConfig(steps=args.steps),
                                       progress=progress)
        print()
    checkpoint = with_validation(checkpoint, validation_samples(held))
    figures = {k: round(v, 3) for k, v in checkpoint.metrics.items()}
    print("held-out phantoms", list(range(*args.held_seeds)), figures)
    if args.save:
        save_click_checkpoint(args.save, checkpoint, half=True)
        print("saved", args.save)


if __name__ == "__main__":
    main()
