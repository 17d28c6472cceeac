"""Where an Optuna study lives, named by one string that the search command and every trial process share.

    sqlite:///runs/<study>/study.db     the default, for one machine
    journal:<path>                      Optuna's JournalStorage on a file (JournalFileBackend), for one machine
    postgresql://user@host:port/db      a database server (any SQLAlchemy URL: mysql://... too), for many
                                        nodes, as Optuna recommends; psycopg (3) is the PostgreSQL driver

On a server the workers keep a heartbeat for their running trials (`Heartbeat`): a trial whose worker died,
on whatever node, is marked failed once its heartbeat is `grace_s` old and run again (Optuna's
RetryHeartbeatStaleTrialCallback, the former RetryFailedTrialCallback), up to `max_retry` times.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna

from projlab.errors import UserError

JOURNAL_PREFIX = "journal:"


@dataclass(frozen=True)
class Heartbeat:
    """How often a worker beats for its running trial, after how long without one the trial is failed, and
    how many times a failed-by-silence trial is run again."""

    interval_s: int = 60
    grace_s: int = 180
    max_retry: int = 2


def is_server(url: str) -> bool:
    """A database server that workers on many nodes share (not a SQLite or journal file)."""
    return not url.startswith(("sqlite:", JOURNAL_PREFIX))


def server_url(url: str) -> str:
    """`postgresql://` through psycopg 3 (SQLAlchemy's default PostgreSQL driver is psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def default_storage_url(study_dir: str | Path) -> str:
    return f"sqlite:///{(Path(study_dir) / 'study.db').resolve()}"


def normalise_url(url: str) -> str:
    """Make a journal path absolute, so that processes started elsewhere open the same file."""
    if url.startswith(JOURNAL_PREFIX):
        return JOURNAL_PREFIX + str(Path(url[len(JOURNAL_PREFIX):]).expanduser().resolve())
    return url


def open_storage(url: str, heartbeat: Heartbeat | None = None) -> optuna.storages.BaseStorage:
    """The storage behind `url`, on a server with `heartbeat` where given; a malformed URL or an unreachable
    database is a one-line UserError."""
    try:
        if url.startswith(JOURNAL_PREFIX):
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            path = Path(url[len(JOURNAL_PREFIX):])
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        if url.startswith("sqlite:"):
            # trial processes report while workers ask and tell: wait for the file lock instead of failing
            return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
        if heartbeat is None:
            return optuna.storages.RDBStorage(server_url(url))
        with warnings.catch_warnings():  # Optuna marks the heartbeat experimental since 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                server_url(url), heartbeat_interval=heartbeat.interval_s, grace_period=heartbeat.grace_s,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(heartbeat.max_retry),
            )
    except Exception as err:  # SQLAlchemy and driver errors have many types
        raise UserError(f"cannot open Optuna storage {url!r}: {str(err).splitlines()[0]}") from None
