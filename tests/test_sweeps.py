"""Sweeps: grid expansion and validation, a failing arm that does not stop the sweep, resume (also after
SIGKILL), SIGTERM forwarding, arms at once on split cores, the pruning callback on its own, and a 2-worker
Optuna search on SQLite. (Run folders: test_run_folders.py; watching and naming a sweep:
test_sweeps_watch.py.)

The slow tests are real tiny training runs (each arm its own process)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from conftest import TINY_RUN
from sweep_helpers import ARM, grid, pruning_spec, results, running_arm, wait_for, write_spec
from projlab.config import load_config
from projlab.errors import UserError
from projlab.sweeps.grid import DEFAULT_SPEC, GridSpec, expand, load_spec, parse_args, plan, spec_from_args
from projlab.sweeps.naming import sweep_name
from projlab.sweeps.search import hydra_value, load_search_spec


# ---------------------------------------------------------------------------------------------------------
# expansion and validation (pure, fast)
# ---------------------------------------------------------------------------------------------------------
def test_fixed_token_projectors_appear_once_per_resolution_and_seed():
    spec = GridSpec(name="x", projectors=["linear", "c_abstractor", "blind"], tokens=[16, 64], res=[112, 168],
                    seeds=[0, 1])
    arms = expand(spec)
    by_proj = {p: [a for a in arms if a.projector == p] for p in spec.projectors}
    assert len(by_proj["linear"]) == len(by_proj["blind"]) == 2 * 2
    assert len(by_proj["c_abstractor"]) == 2 * 2 * 2
    assert not any("num_visual_tokens" in o for a in by_proj["linear"] + by_proj["blind"] for o in a.overrides)
    assert all(a.overrides[-1] == "sweep=x" for a in arms)


@pytest.mark.parametrize("profile, tokens", [("default", [16]), ("tokens", [16, 64])])
def test_the_default_and_tokens_specs_are_the_compressing_projectors_at_matched_tokens(runs_dir, profile, tokens):
    spec = load_spec(DEFAULT_SPEC.with_name(f"{profile}.yaml"))
    arms = plan(spec)
    ms = {a.name: a.num_visual_tokens for a in arms}
    for proj in ("c_abstractor", "d_abstractor", "resampler", "qformer"):
        assert all(ms[f"{proj}-m{m}-r112-s0-joint"] == m for m in tokens)
    assert ms["blind-mall-r112-s0-joint"] == 0 and len(arms) == 4 * len(tokens) + 1
    assert all(a.run_dir == runs_dir / profile / a.name for a in arms)


def test_the_full_spec_is_the_paper_projectors_and_controls(runs_dir):
    spec = load_spec(DEFAULT_SPEC.with_name("full.yaml"))
    assert set(spec.projectors) == {"linear", "mlp", "resampler", "qformer", "c_abstractor", "d_abstractor",
                                    "blind", "shuffle"}
    arms = plan(spec)
    assert len(arms) == 4 * 3 + 4 + 1 and len({a.name for a in arms}) == len(arms)
    ms = {a.name: a.num_visual_tokens for a in arms}
    assert ms["mlp-mall-r112-s0-joint-scrambled"] == 256  # the scrambled-layout control, its own folder
    assert ms["linear-mall-r112-s0-joint"] == 256 and ms["blind-mall-r112-s0-joint"] == 0
    assert ms["c_abstractor-m144-r112-s0-joint"] == 144
    assert all(a.run_dir == runs_dir / "full" / a.name for a in arms)


def test_every_invalid_arm_is_reported_at_once():
    spec = GridSpec(name="x", projectors=["c_abstractor", "nope", "linear"], tokens=[50, 64, 289], res=[112])
    with pytest.raises(UserError) as err:
        plan(spec, ["stage.max_steps=5"])
    lines = str(err.value).splitlines()
    assert lines[0].startswith("3 invalid arm(s)")
    assert any(ln.strip().startswith("c_abstractor-m50-r112-s0:") for ln in lines)
    assert any(ln.strip().startswith("c_abstractor-m289-r112-s0:") for ln in lines)
    assert any(ln.strip().startswith("nope: unknown projector") for ln in lines)
    assert not any("-m64-" in ln or "linear" in ln.split(":")[0] for ln in lines[1:])


def test_grid_command_line_errors_are_one_line_each_and_run_nothing(runs_dir):
    proc = grid("--projectors=c_abstractor", "--tokens=50,289", "--name", "bad", "--", "stage.max_steps=5")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: 2 invalid arm(s)") and len(proc.stderr.strip().splitlines()) == 3
    assert not (runs_dir / "bad").exists()
    assert grid("--name", "x", "sweep=y").returncode == 2  # the sweep names its arms' folder itself


def _name(*argv: str) -> str:
    return spec_from_args(parse_args(list(argv))).name


def test_a_grid_of_the_command_line_is_named_after_what_it_sweeps():
    assert _name("--projectors", "c_abstractor", "--tokens", "64,144,256") == "c_abstractor-m64_144_256"
    assert _name("--projectors", "c_abstractor,resampler", "--tokens", "16", "--res", "112,168", "--seeds", "0,1") \
        == "c_abstractor_resampler-m16-r112_168-s0_1"
    assert _name("--projectors", "blind,linear", "--tokens", "64") == "blind_linear"  # neither takes an M
    many = "16,25,36,49,64,81,100,121,144,169,196"
    long = _name("--projectors", "c_abstractor", "--tokens", many)
    assert long.startswith("c_abstractor-m16_25_and9more-") and len(long.rsplit("-", 1)[1]) == 6
    assert long == _name("--projectors", "c_abstractor", "--tokens", many)  # the same command resumes
    assert long != _name("--projectors", "c_abstractor", "--tokens", many.replace("196", "225"))
    # no list given: the default sweep; a spec keeps its own name; --name wins over both
    assert _name() == "default" and _name("--spec", str(DEFAULT_SPEC.with_name("quick.yaml")), "--tokens", "16") \
        == "quick"
    assert _name("--projectors", "c_abstractor", "--tokens", "64", "--name", "mine") == "mine"


def test_hydras_sweep_syntax_expands_through_its_own_parser():
    from projlab.sweeps.multirun import expand

    name, axes, arms = expand(["projector=glob(*_abstractor)", "projector.num_visual_tokens=range(16,65,48)",
                               "stage.lr=choice(1e-3,3e-4)", "seed=1", "sweep=mine"])
    assert name == "mine" and [k for k, _ in axes] == ["projector", "projector.num_visual_tokens", "stage.lr", "seed"]
    assert len(arms) == 2 * 2 * 2 and all(a.overrides[3] == "seed=1" for a in arms)
    assert arms[0].overrides == ["projector=c_abstractor", "projector.num_visual_tokens=16", "stage.lr=0.001", "seed=1"]
    assert arms[0].label == "projector=c_abstractor projector.num_visual_tokens=16 stage.lr=0.001"
    assert {a.projector for a in arms} == {"c_abstractor", "d_abstractor"}
    # the arms' folder names leave out the learning rate: it becomes their suffix, so they do not share one
    assert {a.suffix for a in arms} == {"lr_0.001", "lr_0.0003"}
    assert not any(a.suffix for a in expand(["projector=mlp,linear", "seed=0,1"])[2])
    # unnamed, it is named as the grid of the same arms is (a fixed setting left out, as the grid's extras are)
    _, axes, _ = expand(["projector=resampler,c_abstractor", "projector.num_visual_tokens=16", "stage.lr=1e-3"])
    assert sweep_name(axes) == _name("--projectors", "c_abstractor,resampler", "--tokens", "16")


@pytest.mark.parametrize("override, words", [
    ("projector.num_visual_tokens=64,,144", ["'projector.num_visual_tokens=64,,144'", "extraneous input ','"]),
    ("stage.lr=interval(1e-4,1e-3)", ["interval()", "make search"]),
    ("projector=glob(zz*)", ["matches nothing", "c_abstractor"]),
    ("stage.lr=glob(*)", ["stage.lr is not a config group"]),
    ("run_name=x", ["names each arm's folder itself"]),
    ("projector.num_visual_tokens=16,50", ["num_visual_tokens=50 is not allowed", "nothing was run"]),
])
def test_a_bad_sweep_override_is_one_error_line(override, words, runs_dir, capsys):
    from projlab import train

    with pytest.raises(SystemExit) as stop:
        train.main(["-m", "projector=c_abstractor", override])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert all(w in err[0] for w in words), err[0]
    assert not runs_dir.exists()


def test_off_a_terminal_a_sweep_prints_one_line_per_arm_event(tmp_path):
    import io

    from projlab.sweeps.view import PlainView, duration, open_view
    from projlab.training.progress import write_progress

    run_dir = tmp_path / "arm"
    write_progress(run_dir, 5, 8, 0, 5.0)  # an earlier launch's: not this one's progress
    out = io.StringIO()
    view = PlainView("s", [("arm", run_dir), ("other", tmp_path / "other")], out)
    view.started(1, 123)
    view.poll()
    for step in (1, 2, 3, 7, 8):  # 3 s for the first 2 steps: 6 steps left take 9 s
        write_progress(run_dir, step, 8, 0, 1.5 * step)
        view.poll()
    view.finished(1, "completed", "completed 0.500 (12 s)")
    view.finished(2, "failed", "failed: RuntimeError: boom (1 s)")
    assert out.getvalue().splitlines() == [
        "[1/2] arm ... started (pid 123)",
        "[1/2] arm ... step 2/8 (25%), ETA 9 s",  # once per quarter, the end on a line of its own
        "[1/2] arm ... step 7/8 (87%), ETA 2 s",
        "[1/2] arm ... completed 0.500 (12 s)",
        "[2/2] other ... failed: RuntimeError: boom (1 s)",
    ]
    assert [duration(s) for s in (42, 600, 7500)] == ["42 s", "10 min", "2 h 05 min"]
    assert isinstance(open_view("s", [], io.StringIO()), PlainView)  # not a terminal: plain lines


def test_search_spec_reads_distributions_sampler_and_pruner(tmp_path):
    path = write_spec(
        tmp_path / "s.yaml", study="s", n_trials=3, overrides=["projector=c_abstractor"],
        space={"stage.lr": {"type": "float", "low": "1e-4", "high": 1e-2, "log": True},
               "stage.warmup_steps": {"type": "int", "low": 0, "high": 100, "step": 25},
               "projector.depth": {"type": "categorical", "choices": [1, 2]}},
        pruner={"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
    )
    spec = load_search_spec(path)
    assert spec.space["stage.lr"] == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    assert spec.space["stage.warmup_steps"].step == 25 and spec.direction == "maximize"
    bad = write_spec(tmp_path / "b.yaml", study="s", n_trials=3, space={"stage.lr": {"type": "gauss"}})
    with pytest.raises(UserError, match="gauss"):
        load_search_spec(bad)
    assert [hydra_value(v) for v in (1e-4, 3, True, "c_abstractor", "1e-3", "a b")] == [
        "0.0001", "3", "true", "c_abstractor", "'1e-3'", "'a b'"
    ]


def test_pruning_callback_reports_and_stops_a_lightning_run(tmp_path):
    import lightning as L
    import torch

    from projlab.sweeps.pruning import OptunaPruning

    class Model(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, i):
            return (self.w - batch).pow(2).mean()

        def validation_step(self, batch, i):
            self.log("val/acc", 0.5)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="p", storage=url, direction="maximize")
    study.set_user_attr("pruner", {"type": "threshold", "lower": 0.9, "n_warmup_steps": 4})
    trial = study.ask()
    callback = OptunaPruning(url, "p", trial.number)
    data = torch.utils.data.DataLoader(torch.ones(64, 1), batch_size=4)
    trainer = L.Trainer(max_steps=12, val_check_interval=2, limit_val_batches=1, callbacks=[callback], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Model(), data, data)
    assert callback.pruned and callback.pruned_at == 4 and trainer.global_step == 4  # stopped at the first check
    frozen = study.trials[0]
    assert frozen.intermediate_values == {2: 0.5, 4: 0.5} and frozen.user_attrs["pruned_at_step"] == 4


def test_a_trials_pruning_callback_enters_through_config_and_is_the_searchs_own(runs_dir, tmp_path):
    """The search gives each trial `callbacks.pruning` (class and arguments) as overrides; the run builds it like
    any configured callback, and a spec or command line that sets it is refused before anything runs."""
    from projlab import build
    from projlab.sweeps.pruning import OptunaPruning
    from projlab.sweeps.search import check_spec, pruning_overrides

    url = f"sqlite:///{tmp_path / 'study.db'}"
    cfg = load_config(["trainer.progress_bar=false", *pruning_overrides(url, "42", 7)])
    [pruning] = [c for c in build.callbacks(cfg, tmp_path) if isinstance(c, OptunaPruning)]
    assert (pruning.storage_url, pruning.study_name, pruning.number) == (url, "42", 7)  # "42" stays a name
    spec = load_search_spec(pruning_spec(tmp_path / "s.yaml", "st", 2))
    with pytest.raises(UserError, match="the search sets callbacks.pruning.trial itself"):
        check_spec(spec, ["+callbacks.pruning.trial=3"])


# ---------------------------------------------------------------------------------------------------------
# real sweeps (each arm a real tiny training run)
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_failing_arm_is_recorded_and_the_sweep_resumes_even_after_sigkill(runs_dir, tmp_path):
    # 1. one arm fails (injected), the other completes, the sweep says so (exit 1)
    spec = dict(name="f", projectors=["c_abstractor", "resampler"], tokens=[16], res=[112], overrides=ARM)
    path = write_spec(tmp_path / "f.yaml", **spec, projector_overrides={"resampler": ["fail_at_step=2"]})
    first = grid("--spec", str(path))
    assert first.returncode == 1, first.stderr[-2000:]
    good, bad = runs_dir / "f" / "c_abstractor-m16-r112-s0-joint", runs_dir / "f" / "resampler-m16-r112-s0-joint"
    assert results(good)["status"] == "completed"
    assert results(bad)["status"] == "failed" and "injected failure at step 2" in results(bad)["error"]
    sweep = json.loads((runs_dir / "f" / "sweep.json").read_text())
    assert [(a["name"], a["status"]) for a in sweep["arms"]] == [(good.name, "completed"), (bad.name, "failed")]
    assert "[2/2] resampler-m16-r112-s0-joint ... failed" in first.stdout and "attribute" in first.stdout
    stamp = (good / "results.json").stat().st_mtime_ns

    # 2. the failure removed, the same sweep again, SIGKILLed with its arm while that arm trains
    write_spec(path, **spec)
    proc = subprocess.Popen([sys.executable, "-m", "projlab.sweeps.grid", "--spec", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (running_arm(runs_dir / "f") or {}).get("name") == bad.name, what="the failed arm to start",
                 proc=proc)
        arm = running_arm(runs_dir / "f")
        wait_for(lambda: results(bad)["status"] == "running", what="the re-run arm to start training", proc=proc)
        proc.kill()
        os.killpg(arm["pid"], signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()

    # 3. once more: every arm completed; the completed arm was launched once in all and never rewritten
    third = grid("--spec", str(path))
    assert third.returncode == 0, third.stderr[-2000:]
    assert "already done, skipped" in third.stdout
    names = {a.name for a in plan(GridSpec(**spec))}
    done = {p.parent.name for p in (runs_dir / "f").glob("*/results.json")
            if results(p.parent)["status"] == "completed"}
    assert done == names == {good.name, bad.name}
    assert (good / "results.json").stat().st_mtime_ns == stamp
    assert (good / "train.log").read_text().count("\n=== ") == 1
    assert (bad / "train.log").read_text().count("\n=== ") == 3


@pytest.mark.slow
def test_sigterm_is_forwarded_to_the_arm_and_recorded(runs_dir):
    proc = subprocess.Popen(
        [sys.executable, "-m", "projlab.sweeps.grid", "--projectors", "blind", "--name", "t", "--", *TINY_RUN],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_for(lambda: running_arm(runs_dir / "t") is not None, what="the arm to start", proc=proc)
    arm = running_arm(runs_dir / "t")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and "re-run the same command" in err
    wait_for(lambda: not _alive(arm["pid"]), timeout=10, what="the arm to end")
    record = results(Path(arm["run_dir"]))
    assert record["status"] == "failed" and record["error"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study_with_a_pruned_trial(runs_dir, tmp_path):
    # pruning_spec: the 3-step trial completes, the 9-step trial is pruned at its step-6 validation
    path = pruning_spec(tmp_path / "s.yaml", "st", 4)
    proc = subprocess.run([sys.executable, "-m", "projlab.sweeps.search", str(path), "--workers", "2"],
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    study = optuna.load_study(study_name="st", storage=f"sqlite:///{runs_dir / 'st' / 'study.db'}")
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
    assert all(t.user_attrs["worker"] and t.user_attrs["run_dir"].endswith(f"trial-{t.number}") for t in trials)
    states = {t.number: t.state for t in trials}
    assert states[0] == optuna.trial.TrialState.COMPLETE and states[1] == optuna.trial.TrialState.PRUNED
    pruned = results(runs_dir / "st" / "trial-1")
    assert pruned["status"] == "pruned" and pruned["efficiency"]["steps"] == 6  # stopped before step 9
    assert trials[1].intermediate_values.keys() == {3, 6}
    assert results(runs_dir / "st" / "trial-0")["metrics"]["accuracy"] == trials[0].value
    assert "best trial" in proc.stdout and " pruned" in proc.stdout and "0 failed" in proc.stdout


@pytest.mark.slow
def test_parallel_arms_run_at_once_on_split_cores_and_a_signal_stops_them_all(runs_dir, tmp_path):
    # 1. two arms at once (one projector at two M): both listed as running together, each with half of the cores, both completed
    spec = write_spec(tmp_path / "p.yaml", name="p", projectors=["c_abstractor"], tokens=[16, 64],
                      res=[112], overrides=ARM)
    proc = subprocess.Popen([sys.executable, "-m", "projlab.sweeps.grid", "--spec", str(spec), "--jobs", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    both: list[dict] = []

    def two_running() -> bool:
        try:
            arms = json.loads((runs_dir / "p" / "sweep.json").read_text())["arms"]
        except (FileNotFoundError, ValueError):
            return False
        both[:] = [a for a in arms if a.get("pid")]
        return len(both) == 2

    wait_for(two_running, what="two arms running at once", proc=proc)
    assert len({a["pid"] for a in both}) == 2
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert "2 at a time" in out and out.count("completed") >= 2
    # the summary tests the step along M on every category (one seed: 250-question cells at most)
    assert "steps along the study's axes" in out and "M 16->64 at 112 px (joint)" in out
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    for arm in both:
        record = results(Path(arm["run_dir"]))
        assert record["status"] == "completed" and record["efficiency"]["cpu_threads"] == threads

    # 2. the same two arms under another name, SIGTERM while both train: both record a failure, exit 128+15
    proc = subprocess.Popen([sys.executable, "-m", "projlab.sweeps.grid", "--spec", str(spec), "--jobs", "2",
                             "--name", "q", "--", "stage.max_steps=400"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs_dir_q = runs_dir / "q"

    def both_training() -> bool:
        records = [runs_dir_q / a for a in ("c_abstractor-m16-r112-s0-joint", "c_abstractor-m64-r112-s0-joint")]
        return all((r / "results.json").exists() and results(r)["status"] == "running" for r in records)

    wait_for(both_training, what="both arms to start training", proc=proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    for arm in ("c_abstractor-m16-r112-s0-joint", "c_abstractor-m64-r112-s0-joint"):
        record = results(runs_dir_q / arm)
        assert record["status"] == "failed" and record["error"]


# ---------------------------------------------------------------------------------------------------------
# one set of checks before any launch, local or SLURM
# ---------------------------------------------------------------------------------------------------------
class _NoClusterQueue:
    """What `slurm.run_arms` asks of its queue, without a SLURM server: no job is live, and a submission is a
    test failure (an arm refused before launch must never reach sbatch)."""

    def __init__(self, sweep_dir: Path, sweep: str) -> None:
        self.folder, self.sweep = sweep_dir / ".slurm", sweep

    def live(self) -> dict:
        return {}

    def submit(self, arm: str, overrides: list[str], run_dir: Path):
        raise AssertionError(f"{arm} was submitted")


def test_an_arm_whose_folder_got_a_run_of_other_settings_is_refused_by_both_launchers(runs_dir):
    """After the sweep validated its arms, another process completed a run of other settings in one arm's
    folder: the local launcher and the SLURM one refuse it the same way (`runner.settled`), neither launches."""
    from omegaconf import OmegaConf

    from projlab.results import write_results
    from projlab.sweeps import runner, slurm

    (arm,) = plan(GridSpec(name="twice", projectors=["c_abstractor"], tokens=[16], res=[112]), ARM)
    other = OmegaConf.create(arm.config)
    other.stage.lr = 0.5
    arm.run_dir.mkdir(parents=True)
    OmegaConf.save(other, arm.run_dir / "config.yaml")
    write_results(arm.run_dir, {"status": "completed", "metrics": {"accuracy": 0.5}})

    local = runner.run_arm(list(arm.overrides), arm.run_dir, rerun=arm.rerun, expected=arm.config)
    events = []
    queue = _NoClusterQueue(arm.run_dir.parent, "twice")
    on_slurm = slurm.run_arms([arm], queue, OmegaConf.create({"poll_s": 0, "retries": 0}),
                              lambda *event: events.append(event[1]), lambda jobs: None)[arm.name]
    for outcome in (local, on_slurm):
        assert outcome.status == "failed" and outcome.returncode is None and not outcome.skipped
        assert "holds a run of other settings" in outcome.error and "stage.lr" in outcome.error
    assert on_slurm.error == local.error and events == ["ended"]
    assert not (arm.run_dir / runner.LOG_FILE).exists()  # nothing was launched here either


def test_every_shipped_sweep_spec_loads_with_its_spec_class_and_unknown_keys_are_refused(tmp_path):
    from projlab.sweeps.specs import CalibrationSpec, load_calibration_spec

    folder = DEFAULT_SPEC.parent
    loaders = {"calibration": load_calibration_spec, "lr_c_abstractor": load_search_spec}
    for path in sorted(folder.glob("*.yaml")):
        spec = loaders.get(path.stem, load_spec)(path)
        assert getattr(spec, "name", getattr(spec, "study", None)), path.name
    calibration = load_calibration_spec(folder / "calibration.yaml")
    assert isinstance(calibration, CalibrationSpec) and "blind" in calibration.arms and calibration.matched_tokens
    for loader, kind in ((load_spec, "sweep spec"), (load_calibration_spec, "calibration spec"),
                         (load_search_spec, "search spec")):
        bad = write_spec(tmp_path / "bad.yaml", tokes=[16])
        with pytest.raises(UserError, match=f"^{kind} '.*': unknown key 'tokes'"):
            loader(bad)


def test_jobs_auto_is_one_arm_per_core_without_a_gpu_and_one_with(monkeypatch):
    from projlab.sweeps import executor

    monkeypatch.setattr(executor, "available_cores", lambda: 4)
    assert executor.auto_jobs(9, gpu=False) == 4  # one arm per core, one thread each (arm_env)
    assert executor.auto_jobs(3, gpu=False) == 3 and executor.arm_env(3)["OMP_NUM_THREADS"] == "1"
    assert executor.auto_jobs(1, gpu=False) == 1
    assert executor.auto_jobs(9, gpu=True) == 1  # arms would share the GPU
    assert executor.resolve_jobs(3, 9) == 3 and executor.resolve_jobs("auto", 2) in (1, 2)
    assert parse_args(["--jobs", "auto"]).jobs == "auto" and parse_args(["--jobs", "3"]).jobs == 3
    with pytest.raises(UserError, match="--jobs"):
        parse_args(["--jobs", "0"])
