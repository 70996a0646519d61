"""python -m conceptlab.reproduce: the same table from one process and from two, a killed run finishes with the
same table without recomputing finished items, a folder with other settings is refused, and every experiment
runs end to end on the toy models and on random-weight pipelines of the real shapes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conceptlab.reproduce import EXPERIMENTS, main
from conceptlab.reproduce.data import write_toy_folder
from conceptlab.reproduce.runner import RowWriter, finished_rows
from conceptlab.toy import tiny
from conceptlab.worlds import sounds

ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CONCEPTLAB_NO_PROGRESS="1")
QUICK = ["removal", "--limit", "4", "--steps", "4"]          # 4 toy scenes, 4 DDIM steps
VOLATILE = {"seconds", "rank"}                                # how long and where, not what


def command(out: Path, *args: str, processes: int = 1) -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", "conceptlab.reproduce", *args, "--out", str(out)]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
            "-m", "conceptlab.reproduce", *args, "--out", str(out)]


def rows_of(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in VOLATILE}
            for line in (out / "rows.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    subprocess.run(command(out, *QUICK), env=ENV, check=True, capture_output=True, timeout=600)
    return out


def test_a_run_writes_the_table_the_rows_and_what_made_them(one_process):
    run = json.loads((one_process / "run.json").read_text())
    assert run["items"] == run["finished"] == 4
    assert run["settings"]["steps"] == 4 and run["settings"]["model"] == "toy-shapes"
    assert run["versions"]["torch"] and run["seeds"] == {f"heldout/{i:05d}": i for i in range(4)}
    assert run["invocations"][-1]["computed"] == 4 and run["invocations"][-1]["found_finished"] == 0
    # 4 DDIM inversion steps, then omega 0 and 1 in one batch (4 calls) and the A.5 branch (4 calls)
    assert run["unet_calls_per_item"] == 12
    assert [r["id"] for r in rows_of(one_process)] == [f"heldout/{i:05d}" for i in range(4)]
    table = (one_process / "table.md").read_text()
    assert "| ours | omega 0 (\"\") | 4 |" in table and "| paper |" in table
    assert (one_process / "items" / "heldout" / "00000" / "removed.png").exists()
    assert (one_process / "figure.png").exists() and (one_process / "table.csv").exists()


def test_two_processes_give_the_same_table_item_for_item(one_process, tmp_path):
    out = tmp_path / "two"
    done = subprocess.run(command(out, *QUICK, processes=2), env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {json.loads(line)["rank"] for line in (out / "rows.jsonl").read_text().splitlines()} == {0, 1}
    assert rows_of(out) == rows_of(one_process)
    assert (out / "table.csv").read_text() == (one_process / "table.csv").read_text()
    assert json.loads((out / "run.json").read_text())["invocations"][-1]["processes"] == 2


def test_accelerate_launch_shards_on_the_cpu(one_process, tmp_path):
    out = tmp_path / "acc"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "conceptlab.reproduce", "removal", "--limit", "2", "--steps", "4", "--out", str(out)]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert rows_of(out) == rows_of(one_process)[:2]


def test_a_killed_run_finishes_with_the_same_table_and_recomputes_nothing_finished(one_process, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(command(out, *QUICK), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    rows = out / "rows-0.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not rows.exists() or len(rows.read_text().splitlines()) < 2):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(finished_rows(out))
    assert 2 <= finished < 4, "the run should be killed midway"
    assert not (out / "rows.jsonl").exists()
    subprocess.run(command(out, *QUICK), env=ENV, check=True, capture_output=True, timeout=600)
    last = json.loads((out / "run.json").read_text())["invocations"][-1]
    assert last["found_finished"] == finished and last["computed"] == 4 - finished
    assert rows_of(out) == rows_of(one_process)
    assert (out / "table.csv").read_text() == (one_process / "table.csv").read_text()


def test_a_folder_with_other_settings_is_refused(one_process):
    with pytest.raises(SystemExit, match="other settings.*steps: 4 there, 5 now"):
        main(["removal", "--limit", "4", "--steps", "5", "--out", str(one_process)])


def test_a_quick_look_grows_into_a_longer_run_in_the_same_folder(one_process, tmp_path):
    import shutil

    grown = tmp_path / "grown"
    shutil.copytree(one_process, grown)
    table = main(["removal", "--limit", "5", "--steps", "4", "--out", str(grown)])
    last = json.loads((grown / "run.json").read_text())["invocations"][-1]
    assert (last["items"], last["found_finished"], last["computed"]) == (5, 4, 1)
    assert table[0]["items"] == 5 and rows_of(grown)[:4] == rows_of(one_process)


def test_rows_of_other_weights_are_refused(one_process, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(one_process, copy)
    settings = json.loads((copy / "settings.json").read_text())
    settings["revisions"]["toy-shapes"] = "retrained"              # as if the embedded model had been retrained
    (copy / "settings.json").write_text(json.dumps(settings))
    with pytest.raises(SystemExit, match="other settings.*revisions"):
        main(["removal", "--limit", "4", "--steps", "4", "--out", str(copy)])


def test_a_line_cut_short_by_a_kill_is_ignored_and_ended(tmp_path):
    path = tmp_path / "rows-0.jsonl"
    path.write_text(json.dumps({"id": "a", "x": 1}) + "\n" + '{"id": "b", "x"')
    assert set(finished_rows(tmp_path)) == {"a"}
    RowWriter(path).write({"id": "c", "x": 3})
    assert set(finished_rows(tmp_path)) == {"a", "c"}


@pytest.mark.parametrize("argv, message", [
    (["removal", "--limit", "0"], "--limit must be at least 1"),
    (["removal", "--data", "/no/such/folder"], "no such folder"),
    (["localization", "--steps", "-2"], "--steps must be at least 1"),
])
def test_bad_arguments_are_refused_at_the_door(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        main(argv + ["--out", str(tmp_path / "x")])
    said = capsys.readouterr().err + str(refused.value)
    assert message in said, said


# ------------------------------------------------------------------------------------------------ toy models
TOY = {"weakconcept10": ["--limit", "2", "--steps", "4", "--reference", "16"],
       "sound-removal": ["--limit", "2", "--steps", "4"],
       "localization": ["--limit", "2"],
       "concept-tokens": ["--limit", "2", "--token-steps", "2", "--gen", "1", "--gen-steps", "2"]}


@pytest.mark.parametrize("name", list(TOY))
def test_every_experiment_runs_on_the_toy_models(name, tmp_path):
    table = main([name, *TOY[name], "--out", str(tmp_path / name)])
    assert table and table[0]["items"] == 2
    scores = [v for line in table for k, v in line.items() if k not in ("method", "items") and v is not None]
    assert scores and all(np.isfinite(scores))


def test_a_folder_of_images_with_masks_gives_the_toy_worlds_numbers(tmp_path):
    data = write_toy_folder(tmp_path / "data", 2)
    from_folder = main(["localization", "--data", str(data), "--out", str(tmp_path / "folder")])
    from_world = main(["localization", "--limit", "2", "--out", str(tmp_path / "world")])
    assert [{k: v for k, v in line.items()} for line in from_folder] == from_world


# ----------------------------------------------------------------------------- random weights, real shapes
@pytest.fixture(scope="module")
def real(tmp_path_factory) -> dict:
    return tiny.save_real_shapes(tmp_path_factory.mktemp("real-shapes"),
                                 ("sd21", "sdxl", "audioldm2", "clip", "owlv2", "lpips", "clap"))


def sound_folder(out: Path) -> Path:
    from scipy.io import wavfile

    for i, kind in enumerate(("drum", "siren")):
        (out / kind).mkdir(parents=True, exist_ok=True)
        wave = sounds.render(kind, np.random.default_rng(i), 0.1, 1.5)
        wavfile.write(out / kind / "0.wav", sounds.SAMPLE_RATE, wave.astype(np.float32))
    return out


@pytest.mark.parametrize("name, shape", [(name, shape) for name in ("removal", "weakconcept10", "localization")
                                         for shape in ("sd21", "sdxl")]
                         + [("concept-tokens", "sd21"), ("sound-removal", "audioldm2")])
def test_every_experiment_runs_on_a_random_weight_pipeline_of_a_real_shape(name, shape, real, tmp_path):
    judges = {"removal": ["--detector", real["owlv2"]],
              "weakconcept10": ["--clip", real["clip"], "--lpips", real["lpips"], "--per-class", "1"],
              "localization": [],
              "concept-tokens": ["--clip", real["clip"], "--token-steps", "2", "--gen", "1", "--gen-steps", "2"],
              "sound-removal": ["--clap", real["clap"], "--data", str(sound_folder(tmp_path / "wav"))]}[name]
    limit = "2" if name == "sound-removal" else "1"
    table = main([name, "--model", real[shape], "--limit", limit, "--steps", "2", *judges,
                  "--out", str(tmp_path / "run")])
    assert table and table[0]["items"] == int(limit)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["settings"]["model"] == real[shape] and run["unet_calls_per_item"] > 0
    if name == "removal":            # 2 inversion steps, then omega 0 and 1 in one batch: 2 calls (no A.5 branch)
        making = run["unet_calls_per_item_making_inputs"]             # the model's own picture, 25 steps
        assert making == 25 and run["unet_calls_per_item"] - making == 4


def test_concept_tokens_refuses_sdxl_at_the_door(real, tmp_path):
    with pytest.raises(SystemExit, match="SD 1.x/2.x-family.*is sdxl"):
        main(["concept-tokens", "--model", real["sdxl"], "--limit", "1", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run" / "rows-0.jsonl").exists() or not (tmp_path / "run" / "rows-0.jsonl").read_text()


def test_every_experiment_is_tested():
    assert set(EXPERIMENTS) == set(TOY) | {"removal"}


def test_a_run_takes_the_scenes_of_its_models_world():
    from conceptlab.reproduce.data import toy_scene_items
    from conceptlab.worlds import shapes

    def scene_world(training):              # as scaling_tables / express_tables choose it
        return shapes.world_of(training, default=shapes.WORLD)

    assert scene_world({"world_version": 2}) is shapes.V2 and scene_world({"seed": 0}) is shapes.V1
    assert scene_world(None) is shapes.WORLD and scene_world({"world": "sounds"}) is shapes.WORLD
    items = toy_scene_items(30, min_objects=2, world=shapes.V2)
    assert all(len(shapes.V2.scene("heldout", it["index"]).labels) >= 2 for it in items)
