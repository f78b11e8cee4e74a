"""A study keeps going through what it can survive and stops clearly on what it cannot."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState
from PIL import Image

from tests.conftest import make_config
from tests.observers import OnTrialEnded
from tunelab.errors import ConfigError
from tunelab.flows.resume import resumable
from tunelab.flows.study import run_study, setup
from tunelab.results.rundir import open_run_dir
from tunelab.search.objective import Objective
from tunelab.search.optimize import optimize

LR = {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}
FLAKY_MODEL = """
import torch
from torch import nn


class Flaky(nn.Module):
    def __init__(self, input_shape, num_outputs, broken):
        super().__init__()
        self.linear = nn.Linear(input_shape[0], num_outputs)
        self.broken = broken

    def forward(self, x):
        if self.broken:
            raise RuntimeError("the model's forward pass broke")
        return self.linear(x)


def net(input_shape, num_outputs, broken=False):
    return Flaky(input_shape, num_outputs, broken)
"""


def write_model(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir(exist_ok=True)
    (folder / "flaky_net.py").write_text(textwrap.dedent(FLAKY_MODEL))
    return folder


def test_a_study_stopped_by_failures_exits_non_zero_even_after_complete_trials(
    tmp_path: Path,
) -> None:
    folder = write_model(tmp_path)
    # a complete trial first, then only broken ones
    cfg = make_config(
        name="flaky",
        model={"source": "py:flaky_net:net"},
        train={"epochs": 1},
        search={
            "n_trials": 8,
            "sampler": "random",
            "max_consecutive_failures": 2,
            "space": {"model.options.broken": {"type": "categorical", "choices": [False, True]}},
        },
    )
    sys.path.insert(0, str(folder))
    try:
        run = open_run_dir(cfg, tmp_path / "run", resume=resumable(cfg))
        _, study, _ = setup(cfg, run)
        study.enqueue_trial({"model.options.broken": False})
        for _ in range(4):
            study.enqueue_trial({"model.options.broken": True})
        result = run_study(cfg, out=tmp_path / "run")
    finally:
        sys.path.remove(str(folder))
    assert result.failed
    assert result.metrics is None, "no refit of an unfinished study"
    assert "stopped after 2 failed trials in a row" in result.stop_reason
    assert "the model's forward pass broke" in result.stop_reason
    states = [t.state for t in result.study.trials]
    assert states[:3] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]
    assert (tmp_path / "run" / "leaderboard.csv").is_file()
    assert not (tmp_path / "run" / "final").exists()


def test_failed_trials_print_one_line_and_keep_the_traceback_in_the_log(tmp_path: Path) -> None:
    folder = write_model(tmp_path)
    config = tmp_path / "broken.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "broken",
                "data": {"source": "sklearn:iris"},
                "model": {"source": "py:flaky_net:net", "options": {"broken": True}},
                "train": {"epochs": 1, "threads": 1},
                "search": {"n_trials": 3, "max_consecutive_failures": 2, "space": {"train.lr": LR}},
            }
        )
    )
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-m", "tunelab.cli", "run", str(config), "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "the model's forward pass broke" in done.stderr
    log = (out / "run.log").read_text()
    assert "Traceback" in log and "RuntimeError: the model's forward pass broke" in log


def test_deleting_the_artifact_folder_mid_study_does_not_fail_later_trials(tmp_path: Path) -> None:
    cfg = make_config(train={"epochs": 1}, search={"n_trials": 4, "space": {"train.lr": LR}})
    run = open_run_dir(cfg, tmp_path / "run", resume=resumable(cfg))
    prepared, study, artifacts = setup(cfg, run)

    def delete_after_first(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.number == 0:
            shutil.rmtree(run.artifacts, ignore_errors=True)

    reason, failed = optimize(
        study, Objective(cfg, prepared, artifacts), cfg, observer=OnTrialEnded(delete_after_first)
    )
    assert (reason, failed) == ("n_trials", False)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    assert artifacts.oof(study.trials[-1]).shape == (150, 3)


@pytest.mark.parametrize(
    ("field", "spec"),
    [
        ("cv.folds", {"type": "int", "low": 2, "high": 5}),
        ("data.test_size", {"type": "float", "low": 0.1, "high": 0.3}),
        ("search.n_trials", {"type": "int", "low": 2, "high": 5}),
        ("data.source", {"type": "categorical", "choices": ["sklearn:iris", "csv:x.csv"]}),
    ],
)
def test_fields_a_trial_cannot_change_are_refused_in_the_config(
    field: str, spec: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError, match=rf"'{field}' cannot change from trial to trial"):
        make_config(search={"space": {field: spec}})


def test_image_size_is_searchable_only_for_image_folders() -> None:
    space = {"data.image_size": {"type": "categorical", "choices": [[8, 8], [16, 16]]}}
    with pytest.raises(ConfigError, match="only images: sources are resized"):
        make_config(data={"source": "sklearn:digits"}, search={"space": space})


def test_a_searched_image_size_re_encodes_the_data_per_trial(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for label, colour in (("dark", 40), ("light", 200)):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(rng.normal(colour, 30, (10, 10, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / label / f"{i}.png")
    space = {"data.image_size": {"type": "categorical", "choices": [[4, 4], [8, 6]]}}
    cfg = make_config(
        data={"source": f"images:{tmp_path / 'images'}"},
        model={"source": "builtin:cnn2d", "width": 4, "depth": 1},
        train={"epochs": 1},
        search={"n_trials": 2, "sampler": "grid", "space": space},
    )
    result = run_study(cfg, out=tmp_path / "run")
    trials = result.study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2, [
        t.user_attrs.get("fail_reason") for t in trials
    ]
    # a list-valued choice is stored as its JSON text and importances still work
    assert {t.params["data.image_size"] for t in trials} == {"[4, 4]", "[8, 6]"}
    board = pd.read_csv(tmp_path / "run" / "leaderboard.csv")
    assert len(board) == 2
    best = yaml.safe_load((tmp_path / "run" / "best_params.json").read_text())
    assert best["data.image_size"] in ([4, 4], [8, 6]), "best_params holds config values"
    assert result.metrics is not None
    final = json.loads((tmp_path / "run" / "final" / "predictor.json").read_text())
    assert final["encoder"]["shape"][1:] == best["data.image_size"], "refit at the best size"


@pytest.mark.slow
def test_workers_stop_when_the_run_process_is_killed(tmp_path: Path) -> None:
    config = tmp_path / "long.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "long",
                "data": {"source": "sklearn:iris"},
                "model": {"source": "builtin:mlp", "width": 8, "depth": 1},
                "train": {"epochs": 400, "threads": 1},
                "early_stopping": {"enabled": False},
                "search": {"n_trials": 50, "pruner": "none", "space": {"train.lr": LR}},
            }
        )
    )
    out = tmp_path / "run"
    main = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tunelab.cli",
            "run",
            str(config),
            "--out",
            str(out),
            "--jobs",
            "2",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        workers = _wait_for_workers(main.pid, out, count=2)
        main.send_signal(signal.SIGKILL)
        main.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers), "orphaned workers kept running"
    finally:
        for pid in _children_of(main.pid):
            os.kill(pid, signal.SIGKILL)


def _children_of(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == parent and b"worker" in cmdline:
                pids.append(int(entry.name))
    return pids


def _wait_for_workers(parent: int, out: Path, count: int) -> list[int]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = _children_of(parent)
        if len(found) >= count and (out / "study.db").exists():
            time.sleep(3)  # let them import and start a trial
            return found
        time.sleep(0.2)
    pytest.fail("the workers never started")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
