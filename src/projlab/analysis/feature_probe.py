"""Do the frozen tower's features carry what the spatial questions need? A linear probe says.

    python -m projlab.analysis.feature_probe [--pool 1,2,3] [hydra overrides of the run, e.g. vision.feature_layer=-1]

For each object of the first training images it takes the patch feature at the object's centre (from the
feature cache the runs share) and fits linear classifiers for its colour, its cell (coarse layout; row and
column apart on the fine one) and, for a striped object, the stripes' orientation; it prints held-out
accuracy against chance. High cell accuracy means position is in the features, so an
arm that fails the spatial questions lost it in the projector or never learned to read it in the LLM.
`--pool K,...` reads each object from the grid average-pooled K x K first (the token holding the object's
centre), as a projector that pools patches into one token sees it: what survives the pooling, per K.
"""
from __future__ import annotations

import sys

import torch

from projlab import build
from projlab.cli import ArgumentParser, positive_ints
from projlab.config import load_config
from projlab.console import quiet_third_party
from projlab.data import spatial
from projlab.errors import UserError, exit_on_user_error
from projlab.models.features import cached_features


def probe(features: torch.Tensor, labels: torch.Tensor, classes: int, steps: int = 300) -> float:
    """Held-out accuracy (last 20%) of a softmax classifier trained on the first 80%."""
    x = (features - features.mean(0)) / features.std(0).clamp_min(1e-6)
    cut = int(0.8 * len(labels))
    w = torch.zeros(x.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(x[:cut] @ w + b, labels[:cut]).backward()
        opt.step()
    with torch.no_grad():
        return ((x[cut:] @ w + b).argmax(-1) == labels[cut:]).float().mean().item()


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    quiet_third_party()
    parser = ArgumentParser(prog="python -m projlab.analysis.feature_probe", description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=positive_ints, default=[1],
                        help="pooling sizes, e.g. 1,2,3: read each object from the k x k average of the grid")
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    pools = args.pool
    cfg = load_config(overrides)
    if cfg.data.name != "spatial":
        raise UserError("the feature probe reads the built-in spatial benchmark (data=spatial)")
    model = build.model(cfg)
    source = build.sources(cfg)["train"]
    n_images = min(3000, len(source.items))
    feats = cached_features(model.vision, source.image, len(source.items), source.signature(), cfg.paths.cache_dir)
    rows, cols = model.vision.grid
    for k in pools:
        if k > 1:
            print(f"pooled {k} x {k} (the token holding each object's centre):")
        probe_grid(feats, source.items[:n_images], rows, cols, k)


def probe_grid(feats: torch.Tensor, items: list, rows: int, cols: int, k: int) -> None:
    """Probe each object of `items` at its centre patch of the (N, rows * cols, C) features, after a k x k
    average pooling of the grid (k = 1: the patch itself)."""
    samples: dict[str, tuple[list, list, int]] = {}  # probe -> (features, labels, classes)

    def add(name: str, feature: torch.Tensor, label: int, classes: int) -> None:
        xs, ys, _ = samples.setdefault(name, ([], [], classes))
        xs.append(feature)
        ys.append(label)

    for i, item in enumerate(items):
        grid = feats[i].float().reshape(rows, cols, -1).permute(2, 0, 1)  # (C, rows, cols)
        if k > 1:
            grid = torch.nn.functional.avg_pool2d(grid[None], k, ceil_mode=True)[0]
        for obj in item.objects:
            r, c = obj.cell
            per_row, per_col = rows / obj.layout, cols / obj.layout
            f = grid[:, int((r + 0.5) * per_row) // k, int((c + 0.5) * per_col) // k]
            kind = "coarse" if obj.layout == spatial.CELLS else "fine"
            add(f"{kind} colour", f, list(spatial.COLOURS).index(obj.colour), len(spatial.COLOURS))
            if kind == "coarse":
                add("coarse cell", f, r * spatial.CELLS + c, spatial.CELLS**2)
            else:  # the fine layout's row and column apart: 144 cells are too many classes for the samples
                add("fine row", f, r, spatial.FINE_CELLS)
                add("fine column", f, c, spatial.FINE_CELLS)
            if obj.stripes:
                add("stripes", f, spatial.OPTIONS["stripes"].index(obj.stripes), len(spatial.OPTIONS["stripes"]))
    for name, (xs, ys, classes) in samples.items():
        acc = probe(torch.stack(xs), torch.tensor(ys), classes)
        held_out = len(ys) - int(0.8 * len(ys))
        print(f"{name:<12} accuracy {acc:.3f}  (chance {1 / classes:.3f}; {held_out} held-out objects)")


if __name__ == "__main__":
    main()
