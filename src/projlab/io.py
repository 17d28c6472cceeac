"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml

from projlab.errors import UserError


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)`, then rename the temporary file over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: str | Path, data: Any) -> Path:
    def _write(tmp: Path) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, _write)


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML file holding a mapping (a sweep, search or calibration spec); a missing file, bad YAML or
    anything but a mapping is a one-line UserError naming `what` and the path."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise UserError(f"{what} '{path}' does not exist") from None
    except yaml.YAMLError as err:
        raise UserError(f"{what} '{path}' is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"{what} '{path}' must be a mapping of keys to values")
    return data
