"""The runner every experiment shares: processes, shards, resume, the merged table.

    run(experiment, args)        # args: the parsed command line (see conceptlab.reproduce.__main__)

An experiment (see `Experiment`) says what its items are, how to run one, and how rows become a table. The
runner does the rest, the same for all five:

1. Processes. accelerate's `PartialState`: one process with `python -m`, K with `accelerate launch` or
   `torchrun`. On a CPU the processes talk over gloo and share the cores (each gets cores / K threads).
2. The folder (`--out`). `settings.json` holds what decides an item's result (experiment, model and its
   revision, data, seed, steps, ...). A rerun with other settings into the same folder is refused: it would mix
   two runs in one table. How many items (`--limit`, `--n`) is not a setting: a quick look with `--limit 8`
   grows into the whole run in the same folder, its 8 items read back.
3. Items. The experiment lists every item (deterministic, each with a stable `id`); the ones whose row is
   already in `rows-*.jsonl` are finished and skipped. The rest are split between the processes in order.
4. Each item runs alone, with its own seed (`--seed` + its index), never batched with its neighbours: its
   row does not depend on how many processes there are or which one ran it. Its row is appended to the
   process's `rows-<rank>.jsonl` and flushed to disk the moment it is done; its files go to `items/<id>/`.
5. The main process merges every row in item order into `rows.jsonl`, the table (`table.md`, `table.csv`,
   beside the paper's own numbers), `figure.png`, and `run.json`: the exact settings, seeds, model ids,
   package versions, and per invocation how many items were found finished and how many were computed.

UNet calls are counted per item (a forward hook on the model's UNet): a call is one UNet forward, whatever
its batch (classifier-free guidance runs the two branches as one call of batch 2).
"""
from __future__ import annotations

import csv
import json
import os
import platform
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..models import weights_revision

ROW_FILES = "rows-*.jsonl"


@dataclass
class Experiment:
    """What one paper table or figure needs. Subclasses set the names and fill in the four methods."""
    name: str = ""
    paper: str = ""                                  # which table or figure of which paper
    default_model: str = "toy-shapes"
    settings_keys: tuple = ()                       # the args that decide a result, beyond the common ones
    paper_table: dict = field(default_factory=dict)  # method -> {score: the paper's number}
    cost: str = ""                                   # what one item runs, said beside its UNet calls

    def add_arguments(self, parser) -> None:
        """Options of this experiment only (the common ones are in __main__)."""

    def open(self, args, device) -> dict:
        """Load the models and judges once per process -> a context passed to every call."""
        raise NotImplementedError

    def items(self, ctx: dict, args) -> list[dict]:
        """Every item, in order, each a JSON-able dict with a unique, file-safe "id"."""
        raise NotImplementedError

    def run_item(self, ctx: dict, item: dict, seed: int, files: Path) -> dict:
        """One item -> its row (JSON-able). Write pictures or sounds under `files`."""
        raise NotImplementedError

    def table(self, rows: list[dict], args) -> list[dict]:
        """Rows -> the table: one dict per line, a "method" key and one key per score."""
        raise NotImplementedError

    def figure(self, rows: list[dict], table: list[dict], path: Path) -> bool:
        """Draw the figure to `path`; -> whether one was drawn."""
        return False


def bar_figure(table: list[dict], scores: tuple[str, ...], path: Path, title: str, ylim=None) -> bool:
    """A grouped bar chart of some scores of the table's lines (the default figure of an experiment)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [line for line in table if any(line.get(k) is not None for k in scores)]
    if not lines:
        return False
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(lines) * len(scores) ** 0.5 + 2), 3.6))
    x, width = np.arange(len(lines)), 0.8 / len(scores)
    for k, score in enumerate(scores):
        ax.bar(x + (k - (len(scores) - 1) / 2) * width, [line.get(score) or 0 for line in lines], width, label=score)
    ax.set_xticks(x, [line["method"] for line in lines], rotation=45, ha="right", fontsize=7)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------------------------- 1. processes
def processes(device: str | None):
    """accelerate's PartialState, on the CPU when no GPU is asked for or there is none."""
    from accelerate import PartialState

    cpu = device == "cpu" or (device is None and not torch.cuda.is_available())
    state = PartialState(cpu=cpu)
    if cpu and state.num_processes > 1 and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // state.num_processes))
    return state


# ------------------------------------------------------------------------------------------- 2. the folder
def check_settings(out: Path, settings: dict) -> None:
    """Refuse a folder that holds a run with other settings (its rows would be mixed into this table)."""
    path = out / "settings.json"
    if path.exists():
        old = json.loads(path.read_text())
        changed = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if changed:
            said = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in changed.items())
            raise SystemExit(f"{out} holds a run with other settings ({said}). Give another --out, or delete the "
                             f"folder to start over.")


# ------------------------------------------------------------------------------------------- 3. items
def finished_rows(out: Path) -> dict[str, dict]:
    """Every row written so far by any process of any earlier invocation, by item id. A line cut short by a
    kill is ignored (its item runs again)."""
    rows = {}
    for path in sorted(out.glob(ROW_FILES)):
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[row["id"]] = row
    return rows


def check_items(items: list[dict]) -> None:
    ids = [it["id"] for it in items]
    if len(set(ids)) != len(ids):
        raise ValueError("two items share an id; each item needs its own (it names its row and its folder)")
    bad = [i for i in ids if not re.fullmatch(r"[A-Za-z0-9_.\-/]+", i) or ".." in i]
    if bad:
        raise ValueError(f"item ids must be file-safe (letters, digits, _ . - /): {bad[:3]}")


# ------------------------------------------------------------------------------------------- 4. one item
@contextmanager
def counting_unet_calls(model):
    """-> a dict whose "calls" counts UNet forwards inside the block."""
    count = {"calls": 0}
    unet = getattr(model, "unet", None) if model is not None else None
    if unet is None:
        yield count
        return
    handle = unet.register_forward_hook(lambda module, args, output: count.__setitem__("calls", count["calls"] + 1))
    try:
        yield count
    finally:
        handle.remove()


class RowWriter:
    """Appends rows to one process's file, each flushed and synced at once."""

    def __init__(self, path: Path):
        self.path = path
        if path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            with path.open("ab") as f:                 # a line cut short by a kill: end it, it is ignored
                f.write(b"\n")

    def write(self, row: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())


# ------------------------------------------------------------------------------------------- 5. merge
def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("conceptlab", "torch", "diffusers", "transformers", "accelerate", "numpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def write_table(table: list[dict], paper_table: dict, out: Path) -> str:
    """table.csv (ours, then the paper's numbers as rows whose source is "paper") and table.md."""
    columns = list(dict.fromkeys(k for line in table for k in line))
    lines = [dict(source="ours", **line) for line in table]
    lines += [dict(source="paper", method=m, **scores) for m, scores in paper_table.items()]
    columns = ["source"] + columns + [k for s in paper_table.values() for k in s if k not in columns]
    columns = list(dict.fromkeys(columns))
    with (out / "table.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for line in lines:
            w.writerow({k: line.get(k) for k in columns})
    md = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(fmt(line.get(k)) for k in columns) + " |" for line in lines]
    text = "\n".join(md) + "\n"
    (out / "table.md").write_text(text)
    return text


def merge(experiment: Experiment, items: list[dict], out: Path, args, settings: dict, invocation: dict) -> list[dict]:
    done = finished_rows(out)
    rows = [done[it["id"]] for it in items if it["id"] in done]
    with (out / "rows.jsonl").open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    table = experiment.table(rows, args) if rows else []
    text = write_table(table, experiment.paper_table, out)
    calls = [r["unet_calls"] for r in rows if "unet_calls" in r]
    if calls:
        making = [r.get("unet_calls_input", 0) for r in rows]
        made = f", of which {np.mean(making):.0f} make the input" if any(making) else ""
        text += (f"\nCost: {np.mean(calls):.0f} UNet calls per item{made} (min {min(calls)}, max {max(calls)}; a "
                 f"call is one forward, whatever its batch). {experiment.cost}\n")
        (out / "table.md").write_text(text)
    drew = experiment.figure(rows, table, out / "figure.png") if rows else False
    old = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    record = dict(experiment=experiment.name, paper=experiment.paper, settings=settings,
                  seeds={it["id"]: settings["seed"] + i for i, it in enumerate(items)},
                  items=len(items), finished=len(rows), versions=versions(),
                  unet_calls_per_item=float(np.mean(calls)) if calls else None,
                  unet_calls_per_item_making_inputs=float(np.mean([r.get("unet_calls_input", 0) for r in rows]))
                  if rows else None,
                  invocations=old.get("invocations", []) + [invocation], figure=drew)
    (out / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"\n{experiment.name} ({experiment.paper}): {len(rows)} of {len(items)} items\n\n{text}")
    print(f"written to {out}: table.md, table.csv, rows.jsonl, run.json" + (", figure.png" if drew else ""))
    return table


# ------------------------------------------------------------------------------------------- the run
def run(experiment: Experiment, args) -> list[dict] | None:
    """Run `experiment` with the parsed command line `args` -> the merged table (main process; None elsewhere)."""
    # 1. Processes
    state = processes(args.device)
    rank, world = state.process_index, state.num_processes
    # 2. The folder and its settings
    out = Path(args.out)
    settings = dict(experiment=experiment.name, model=args.model, data=args.data, seed=args.seed, dtype=args.dtype,
                    **{k: getattr(args, k) for k in experiment.settings_keys})
    settings["revisions"] = {settings[k]: weights_revision(settings[k]) for k in ("model", "clip", "detector", "clap")
                             if isinstance(settings.get(k), str)}
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        check_settings(out, settings)
        (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    state.wait_for_everyone()
    # 3. Items, and the finished ones
    ctx = experiment.open(args, state.device)
    items = experiment.items(ctx, args)
    if args.limit is not None:
        items = items[:args.limit]
    check_items(items)
    index = {it["id"]: i for i, it in enumerate(items)}
    done = finished_rows(out)
    todo = [it for it in items if it["id"] not in done]
    state.wait_for_everyone()                            # every process has read the same finished rows
    # 4. Split the rest and run, one item at a time
    t0 = time.time()
    writer = RowWriter(out / f"rows-{rank}.jsonl")
    with state.split_between_processes(todo) as mine:
        bar = progress(mine, rank, world, experiment.name)
        for item in bar:
            files = out / "items" / item["id"]
            files.mkdir(parents=True, exist_ok=True)
            seed = args.seed + index[item["id"]]
            started = time.perf_counter()
            with counting_unet_calls(ctx.get("model")) as count:
                row = experiment.run_item(ctx, item, seed, files)
            writer.write(dict(id=item["id"], **row, unet_calls=count["calls"],
                              seconds=round(time.perf_counter() - started, 3), rank=rank))
    state.wait_for_everyone()
    # 5. Merge
    if not state.is_main_process:
        return None
    invocation = dict(processes=world, items=len(items), found_finished=len(items) - len(todo), computed=len(todo),
                      seconds=round(time.time() - t0, 1), started=time.strftime("%Y-%m-%dT%H:%M:%S"),
                      command=" ".join(sys.argv))
    print(f"{invocation['found_finished']} items were finished before; {invocation['computed']} computed now")
    return merge(experiment, items, out, args, settings, invocation)


def progress(items, rank: int, world: int, name: str):
    from tqdm.auto import tqdm

    return tqdm(items, desc=f"{name} [process {rank + 1}/{world}]", position=rank, leave=True,
                disable=not items or os.environ.get("CONCEPTLAB_NO_PROGRESS") == "1")
