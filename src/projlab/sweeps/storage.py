"""Where an Optuna study lives, named by one string that the search command and every trial process share.

    sqlite:///runs/<study>/study.db     the default (any SQLAlchemy URL works: postgresql://..., mysql://...)
    journal:<path>                      Optuna's JournalStorage on a file (JournalFileBackend)
"""
from __future__ import annotations

from pathlib import Path

import optuna

from projlab.errors import UserError

JOURNAL_PREFIX = "journal:"


def default_storage_url(study_dir: str | Path) -> str:
    return f"sqlite:///{(Path(study_dir) / 'study.db').resolve()}"


def normalise_url(url: str) -> str:
    """Make a journal path absolute, so that processes started elsewhere open the same file."""
    if url.startswith(JOURNAL_PREFIX):
        return JOURNAL_PREFIX + str(Path(url[len(JOURNAL_PREFIX):]).expanduser().resolve())
    return url


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage behind `url`; a malformed URL or an unreachable database is a one-line UserError."""
    try:
        if url.startswith(JOURNAL_PREFIX):
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            path = Path(url[len(JOURNAL_PREFIX):])
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        if url.startswith("sqlite:"):
            # trial processes report while workers ask and tell: wait for the file lock instead of failing
            return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
        return optuna.storages.RDBStorage(url)
    except Exception as err:  # SQLAlchemy and driver errors have many types
        raise UserError(f"cannot open Optuna storage {url!r}: {str(err).splitlines()[0]}") from None
