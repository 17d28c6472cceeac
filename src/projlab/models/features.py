"""The frozen-encoder feature cache.

A frozen tower's features depend only on (tower, weights, layer, resolution, how the image is made square and
normalised, image), so they are computed once per dataset split and shared by every arm and epoch of a sweep:
stored under the runs root, keyed by a hash of those inputs, written atomically, computed by one process while
concurrent arms wait on a lock. The feature norm's per-channel statistics of an entry are kept beside it,
computed once.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Sequence

import torch
from filelock import FileLock
from PIL import Image

from projlab.io import atomic_write
from projlab.models.vision import VisionTower

BATCH = 64


# (file, size, mtime) of a tower's weight files -> their hash: a process that builds several runs (a test, a
# notebook) reads a 1.2 GB tower once, not once per run and split; a rewritten file has a new mtime
_FINGERPRINTS: dict[tuple, str] = {}


def weights_fingerprint(name_or_path: str) -> str:
    """Hash of the tower's weight files (a hub name hashes its name: its files are immutable by revision)."""
    path = Path(name_or_path)
    files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) if path.is_dir() else []
    if not files:
        return hashlib.sha256(name_or_path.encode()).hexdigest()
    key = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key not in _FINGERPRINTS:
        h = hashlib.sha256()
        for f in files:
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        _FINGERPRINTS[key] = h.hexdigest()
    return _FINGERPRINTS[key]


def cache_key(tower: VisionTower, data_signature: str) -> str:
    parts = [weights_fingerprint(tower.name_or_path), str(tower.feature_layer), str(tower.resolution), data_signature,
             str(tower.feature_dtype), tower.image_aspect, str(tower.processor.image_mean),
             str(tower.processor.image_std)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def entry_path(tower: VisionTower, data_signature: str, cache_dir: str | Path) -> Path:
    """The cache file of a split's features."""
    return Path(cache_dir) / "features" / f"{cache_key(tower, data_signature)}.pt"


@torch.no_grad()
def compute_features(tower: VisionTower, images: Callable[[int], Image.Image], n: int) -> torch.Tensor:
    """Features (n, N, C) of `n` images in the tower's feature dtype, `images(i)` giving the i-th, in batches
    of BATCH."""
    was_training = tower.training
    tower.eval()
    out = []
    for start in range(0, n, BATCH):
        batch = [images(i) for i in range(start, min(n, start + BATCH))]
        out.append(tower(tower.preprocess(batch)).to(tower.feature_dtype))  # a cache holds a frozen tower's features
    tower.train(was_training)
    return torch.cat(out)


def cached_features(
    tower: VisionTower, images: Callable[[int], Image.Image], n: int, data_signature: str, cache_dir: str | Path,
    has_image: Callable[[int], bool] = lambda i: True,
) -> torch.Tensor:
    """The split's features from the cache, computing and storing them first if absent. The row of an item
    without an image (`has_image(i)` false: a text-only record) is zeros, and the tower never sees it."""
    path = entry_path(tower, data_signature, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not path.exists():
            shown = [i for i in range(n) if has_image(i)]
            if len(shown) == n:
                feats = compute_features(tower, images, n)
            else:
                feats = torch.zeros(n, tower.grid[0] * tower.grid[1], tower.hidden_size, dtype=tower.feature_dtype)
                if shown:
                    feats[shown] = compute_features(tower, lambda k: images(shown[k]), len(shown))
            atomic_write(path, lambda tmp: torch.save(feats, tmp))
    return torch.load(path, mmap=True, weights_only=True)


def channel_stats(
    features: Sequence[torch.Tensor] | torch.Tensor, rows: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over every image (of `rows`, when given) and position, accumulated in float64,
    batch by batch (a memory-mapped cache is read a batch at a time)."""
    total = None
    count = 0
    n = len(features) if rows is None else len(rows)
    for start in range(0, n, BATCH):
        batch = features[start : start + BATCH] if rows is None else features[list(rows[start : start + BATCH])]
        x = batch.double().flatten(0, 1)  # (b*N, C)
        s = torch.stack([x.sum(0), (x * x).sum(0)])
        total = s if total is None else total + s
        count += x.shape[0]
    mean = total[0] / count
    var = (total[1] / count - mean * mean).clamp_min(0)
    return mean.float(), var.sqrt().float()


def cached_stats(
    tower: VisionTower, data_signature: str, cache_dir: str | Path, features: torch.Tensor, rows: Sequence[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """`channel_stats(features, rows)` of a cache entry (`features`, as `cached_features` gave it; `rows`, its
    images), computed once and kept beside the entry (every arm of a sweep reads them)."""
    entry = entry_path(tower, data_signature, cache_dir)
    path = entry.with_name(entry.stem + ".stats.pt")
    with FileLock(str(entry) + ".lock"):
        if not path.exists():
            mean, std = channel_stats(features, rows)
            atomic_write(path, lambda tmp: torch.save({"mean": mean, "std": std}, tmp))
    stats = torch.load(path, weights_only=True)
    return stats["mean"], stats["std"]
