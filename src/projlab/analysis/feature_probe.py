"""Do the frozen tower's features carry what the spatial questions need? A linear probe says.

    python -m projlab.analysis.feature_probe [hydra overrides of the run, e.g. vision.feature_layer=-1]

For each object of the first training images it takes the patch feature at the object's centre (from the
feature cache the runs share) and fits linear classifiers for its colour, its cell (coarse layout; row and
column apart on the fine one) and, for a striped object, the stripes' orientation; it prints held-out
accuracy against chance. High cell accuracy means position is in the features, so an
arm that fails the spatial questions lost it in the projector or never learned to read it in the LLM.
"""
from __future__ import annotations

import sys

import torch

from projlab import build
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
    cfg = load_config(sys.argv[1:] if argv is None else argv)
    if cfg.data.name != "spatial":
        raise UserError("the feature probe reads the built-in spatial benchmark (data=spatial)")
    model = build.model(cfg)
    source = build.sources(cfg)["train"]
    n_images = min(3000, len(source.items))
    feats = cached_features(model.vision, source.image, len(source.items), source.signature(), cfg.paths.cache_dir)
    rows, cols = model.vision.grid
    samples: dict[str, tuple[list, list, int]] = {}  # probe -> (features, labels, classes)

    def add(name: str, feature: torch.Tensor, label: int, classes: int) -> None:
        xs, ys, _ = samples.setdefault(name, ([], [], classes))
        xs.append(feature)
        ys.append(label)

    for i, item in enumerate(source.items[:n_images]):
        for obj in item.objects:
            r, c = obj.cell
            per_row, per_col = rows / obj.layout, cols / obj.layout
            patch = int((r + 0.5) * per_row) * cols + int((c + 0.5) * per_col)
            f = feats[i, patch].float()
            kind = "coarse" if obj.layout == spatial.CELLS else "fine"
            add(f"{kind} colour", f, list(spatial.COLOURS).index(obj.colour), len(spatial.COLOURS))
            if kind == "coarse":
                add("coarse cell", f, r * spatial.CELLS + c, spatial.CELLS**2)
            else:  # the fine layout's row and column apart: 144 cells are too many classes for the samples
                add("fine row", f, r, spatial.FINE_CELLS)
                add("fine column", f, c, spatial.FINE_CELLS)
            if obj.stripes:
                add("stripes", f, spatial.OPTIONS["stripes"].index(obj.stripes), len(spatial.OPTIONS["stripes"]))
    for name, (xs, ys, k) in samples.items():
        acc = probe(torch.stack(xs), torch.tensor(ys), k)
        print(f"{name:<12} accuracy {acc:.3f}  (chance {1 / k:.3f}; {len(ys) - int(0.8 * len(ys))} held-out objects)")


if __name__ == "__main__":
    main()
