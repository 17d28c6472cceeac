# projlab: every command a user needs. Variables: RUNS (runs root, default runs/), and per target below.
SHELL := /bin/bash
PY := .venv/bin/python
STAMP := .venv/.installed-stamp
RUNS ?= runs
export RUNS
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM := false
# OpenMP threads sleep instead of spinning while they wait: a spinning pool beside another busy process
# made a CPU training step up to 100x slower (make bench measured it)
export OMP_WAIT_POLICY ?= PASSIVE

PROJECTOR ?=
TOKENS ?=
RES ?=
SEED ?=
SEEDS ?=
NAME ?=
ARGS ?=
JOBS ?=
# Where arms run: local (processes here) or slurm (one SLURM job per arm; experiments/launcher/slurm.yaml,
# settings as ARGS="launcher.partition=a100 launcher.time_min=600")
LAUNCHER ?=

comma := ,
opt = $(if $(2),$(1)=$(2),)

.PHONY: install test test-fast train sweep search calibrate figures reproduce bench bench-gpu eval chat clean help

help:
	@echo "make reproduce | test | train | sweep | search | calibrate | figures | bench | bench-gpu | eval | chat"

# A venv with the exact versions of requirements.lock; re-runs only when the lock or pyproject changes.
install: $(STAMP)
$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || python3 -m venv .venv
	@echo "installing pinned dependencies into .venv (first time: about a minute)"
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock 2>&1 | grep -v "is ignored: it is neither" || true
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | grep -v "is ignored: it is neither" || true
	@$(PY) -c "import projlab, torch, lightning, transformers" && touch $(STAMP)

# One pytest worker per core: most tests wait on one single-threaded tiny run at a time, so two workers
# on 2 cores nearly halve the wall time. --dist loadfile keeps each file on one worker, so the arms a
# file's fixture trains are trained once; the long end-to-end files are split to balance the workers.
TEST_WORKERS ?= auto
test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

test-fast: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow"

# One arm: make train PROJECTOR=c_abstractor TOKENS=144 RES=112 SEED=0 ARGS="stage.lr=1e-3"
train: install
	$(PY) -m projlab.train $(call opt,projector,$(PROJECTOR)) $(call opt,projector.num_visual_tokens,$(TOKENS)) \
		$(call opt,vision.resolution,$(RES)) $(call opt,seed,$(SEED)) $(ARGS)

# A grid: make sweep PROJECTOR=c_abstractor TOKENS=64,144,256 RES=112 SEEDS=0,1 NAME=my_sweep JOBS=2
# (NAME: default derived from the lists, e.g. c_abstractor-m64_144_256, printed first and last; JOBS: arms
# run at once, the cores split between them; default auto: one per core, one thread each, without a GPU)
sweep: install
	$(PY) -m projlab.sweeps.grid $(call opt,--projectors,$(PROJECTOR)) $(call opt,--tokens,$(TOKENS)) \
		$(call opt,--res,$(RES)) $(call opt,--seeds,$(SEEDS)) $(call opt,--name,$(NAME)) --jobs $(or $(JOBS),auto) \
		$(call opt,launcher,$(LAUNCHER)) $(ARGS)

# An Optuna search declared in sweeps/: make search SWEEP=sweeps/lr_c_abstractor.yaml WORKERS=2
# STORAGE: the study's database (default sqlite in the study's folder, one machine); for workers on many
# nodes a server, STORAGE=postgresql://user@host:5432/db
SWEEP ?= sweeps/lr_c_abstractor.yaml
WORKERS ?= 1
STORAGE ?=
search: install
	$(PY) -m projlab.sweeps.search $(SWEEP) --workers $(WORKERS) $(call opt,--storage,$(STORAGE)) \
		$(call opt,launcher,$(LAUNCHER)) $(ARGS)

# The instrument's calibration arms over 3 seeds -> $(RUNS)/calibration/calibration.json + table
calibrate: install
	$(PY) -m projlab.sweeps.calibrate --jobs $(or $(JOBS),auto) $(call opt,launcher,$(LAUNCHER)) $(ARGS)

# Tables and figures from logged results: make figures NAME=default
figures: install
	$(PY) -m projlab.analysis.report $(call opt,--sweep,$(NAME)) $(ARGS)

# The main job on the embedded default: a sweep of sweeps/$(PROFILE).yaml, one arm per core (JOBS=),
# then every table and figure. PROFILE=default (5 arms: four projectors at M=16, blind) | quick (3 arms)
# | tokens (9 arms: M=16 and 64) | full (the paper's 17 arms: hours). A failed arm does not stop the
# report (it shows as failed in the tables); the exit code still says so.
PROFILE ?= default
reproduce: install
	@case "$(PROFILE)" in default|quick|tokens|full) ;; *) echo "error: PROFILE=$(PROFILE) is unknown; use default, quick, tokens or full"; exit 2;; esac
	@$(PY) -m projlab.sweeps.grid --spec sweeps/$(PROFILE).yaml --name $(PROFILE) --jobs $(or $(JOBS),auto) $(call opt,launcher,$(LAUNCHER)) $(ARGS); status=$$?; \
		$(PY) -m projlab.analysis.report --sweep $(PROFILE) && exit $$status

bench: install
	$(PY) -m projlab.bench $(ARGS)

# The paper configuration's training step on one GPU (CLIP ViT-L/14-336 + Vicuna-7B with random weights,
# C-Abstractor M=144, stage 2, FSDP2 in bf16): tokens/s, memory, MFU -> bench/gpu.json, bench/gpu.md
# ARGS="--layers 16 --batch-size 2 --steps 5" where memory or time is short; refuses without CUDA
bench-gpu: install
	$(PY) -m projlab.bench.gpu $(ARGS)

# Score a run on a benchmark file: make eval CKPT=runs/x/arm BENCH=mmbench DATA=path/to/file.tsv
# MODE=likelihood (option scores, the default) | generate (answers written out, read as text)
CKPT ?=
BENCH ?= spatial
DATA ?=
MODE ?=
eval: install
	$(PY) -m projlab.evaluation.evaluate --run $(CKPT) --bench $(BENCH) $(call opt,--data,$(DATA)) \
		$(call opt,--mode,$(MODE)) $(ARGS)

# Ask a run about an image: make chat CKPT=runs/x/arm IMAGE=photo.jpg PROMPT="What is on the table?"
# (ARGS="--temperature 0.7 --top-p 0.9" samples instead of the greedy answer)
IMAGE ?=
PROMPT ?=
chat: install
	$(PY) -m projlab.evaluation.chat --run "$(CKPT)" --prompt "$(PROMPT)" $(call opt,--image,$(IMAGE)) $(ARGS)

clean:
	rm -rf .pytest_cache reports bench
