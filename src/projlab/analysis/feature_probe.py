"""Do the frozen tower's features carry what the spatial questions need? A linear probe says.

    python -m projlab.analysis.feature_probe [hydra overrides of the run, e.g. vision.feature_layer=-1]

For each object of the first training images it takes the patch feature at the object's centre (from the
feature cache the runs share) and fits a linear classifier for the object's layout cell and for its colour;
it prints held-out accuracy against chance. High cell accuracy means position is in the features, so an
arm that fails the spatial questions lost it in the projector or never learned to read it in the LLM.
"""
from __future__ import annotations

import sys

import torch

from projlab.config import load_config
from projlab.console import quiet_third_party
from projlab.data import spatial
from projlab.data.features import cached_features
from projlab.errors import UserError, exit_on_user_error


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
    from projlab.train import build_model, build_sources

    cfg = load_config(sys.argv[1:] if argv is None else argv)
    if cfg.data.name != "spatial":
        raise UserError("the feature probe reads the built-in spatial benchmark (data=spatial)")
    model = build_model(cfg)
    source = build_sources(cfg)["train"]
    n_images = min(3000, len(source.items))
    feats = cached_features(model.vision, source.image, len(source.items), source.signature(), cfg.paths.cache_dir)
    rows, cols = model.vision.grid
    per_cell = rows // spatial.CELLS
    x, cell, colour = [], [], []
    for i, item in enumerate(source.items[:n_images]):
        for obj in item.objects:
            r, c = obj.cell
            patch = int((r + 0.5) * per_cell) * cols + int((c + 0.5) * per_cell)
            x.append(feats[i, patch].float())
            cell.append(r * spatial.CELLS + c)
            colour.append(list(spatial.COLOURS).index(obj.colour))
    x = torch.stack(x)
    for name, labels, k in (("layout cell", cell, spatial.CELLS**2), ("colour", colour, len(spatial.COLOURS))):
        acc = probe(x, torch.tensor(labels), k)
        print(f"{name:<12} accuracy {acc:.3f}  (chance {1 / k:.3f}; {len(labels) - int(0.8 * len(labels))} held-out objects)")


if __name__ == "__main__":
    main()
