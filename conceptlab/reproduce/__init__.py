"""Reproduce the papers' tables and figures, one command each, on any number of processes, resumable.

    python -m conceptlab.reproduce removal --limit 8                  # a quick look, toy model, one process
    python -m conceptlab.reproduce removal --model stabilityai/stable-diffusion-2-1-base --data coco10/
    accelerate launch --num_processes 8 -m conceptlab.reproduce weakconcept10 --model ... --out runs/wc10
    torchrun --nproc_per_node 2 -m conceptlab.reproduce localization      # 2 processes on a CPU (gloo)

Experiments (EXPERIMENTS): removal (ScalingConcept Fig. 3), sound-removal (Fig. 3, audio), weakconcept10
(Tables 1 and 2), localization (ConceptExpress Table 3), concept-tokens (ConceptExpress Table 1). The default
model is the embedded toy model and the default data its world, so every experiment runs on a CPU.

A run writes to --out (default runs/<experiment>): each finished item at once (a JSON line in rows-<rank>.jsonl,
its pictures or sounds in items/<id>/), and at the end the merged table (table.md, table.csv, beside the
paper's numbers), figure.png and run.json (settings, seeds, model ids, package versions, per invocation how
many items were found finished and how many computed). Killed and run again with the same command, it skips
what is finished. How: conceptlab/reproduce/runner.py. On a CPU, `accelerate launch --cpu` starts one process
only: use `accelerate launch --multi_gpu --num_processes K` (it goes through torchrun; conceptlab picks gloo
when there is no GPU) or torchrun itself.
"""
from __future__ import annotations

from .express_tables import ConceptTokens, Localization
from .runner import Experiment, run
from .scaling_tables import Removal, SoundRemoval, WeakConcept10

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (WeakConcept10(), Removal(), SoundRemoval(), Localization(),
                                                          ConceptTokens())}


def parser():
    import argparse

    p = argparse.ArgumentParser(prog="python -m conceptlab.reproduce", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    for name, e in EXPERIMENTS.items():
        q = sub.add_parser(name, help=e.paper, description=e.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        q.add_argument("--model", default=e.default_model, help=f"a model id or folder (default {e.default_model})")
        q.add_argument("--data", default=None, help="a folder of your own (see conceptlab.reproduce.data); "
                       "default: the toy world (a real model: its own pictures where the experiment allows)")
        q.add_argument("--out", default=None, help=f"the run's folder (default runs/{name})")
        q.add_argument("--limit", type=int, default=None, help="the first N items only, for a quick look")
        q.add_argument("--seed", type=int, default=0, help="item i gets seed + i")
        q.add_argument("--steps", type=int, default=50, help="DDIM steps to invert and sample (the papers: 50)")
        q.add_argument("--device", default=None, help="cpu, cuda (default: each process's GPU, else the CPU)")
        q.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
        e.add_arguments(q)
    return p


def check_args(p, args) -> None:
    for key in ("limit", "n", "steps", "per_class", "token_steps", "gen", "gen_steps", "n_max", "reference"):
        value = getattr(args, key, None)
        if value is not None and value < 1:
            p.error(f"--{key.replace('_', '-')} must be at least 1, got {value}")
    if args.out is None:
        args.out = f"runs/{args.experiment}"


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)
    check_args(p, args)
    return run(EXPERIMENTS[args.experiment], args)


def reproduce(experiment: str, **options):
    """The same from Python: reproduce("removal", limit=8, out="runs/r") -> the merged table (list of dicts)."""
    argv = [experiment]
    for key, value in options.items():
        if value is None or value is False:
            continue
        argv += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return main(argv)
