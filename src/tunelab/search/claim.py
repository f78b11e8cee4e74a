"""Which process finishes a study shared across machines: a PostgreSQL advisory lock.

A run directory's lock (``results/runlock.py``) makes one process the finisher of the
studies kept in that directory (SQLite, a journal there). A study in PostgreSQL is shared by
``tunelab run`` processes on several machines, each with a run directory of its own, so the
finisher is the process that holds the study's advisory lock on the server: a session
lock (``pg_try_advisory_lock``) on a connection kept open for the run's life, which the
server drops when that connection ends (the process exits or is killed). The holder writes
who it is into the study's user attribute ``tunelab:finisher`` for the others' messages.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import optuna
import sqlalchemy

from tunelab import uris
from tunelab.errors import FatalError
from tunelab.search.study import FIELD, redact

log = logging.getLogger("tunelab")
FINISHER_ATTR = "tunelab:finisher"


@dataclass
class StudyClaim:
    """The finisher's claim on a study; ``holder`` says who has it when this process does
    not (``held`` False)."""

    held: bool
    holder: str = ""
    connection: Any = None

    def release(self) -> None:
        if self.connection is not None:
            self.connection.close()  # the server drops the session's advisory lock
            self.connection = None


def claim_study(url: str, study: optuna.Study) -> StudyClaim:
    """Claim ``study`` for this process when its storage is shared across machines
    (PostgreSQL); for any other storage the run directory's lock decides, so the claim is
    held at once."""
    if not url.startswith(("postgresql", "postgres")):
        return StudyClaim(held=True)
    key = _key(study.study_name)
    try:
        connect = uris.expand(url, field=FIELD)
        engine = sqlalchemy.create_engine(connect, poolclass=sqlalchemy.pool.NullPool)
        # autocommit: the session lock lives outside transactions, and none is left open
        connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        query = sqlalchemy.text("SELECT pg_try_advisory_lock(:key)")
        got = connection.execute(query, {"key": key}).scalar()
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise FatalError(
            f"search.storage: cannot take the study's lock on {redact(url)!r} "
            f"({type(exc).__name__}); check that the server runs and accepts this user"
        ) from None
    if not got:
        connection.close()
        holder = study.user_attrs.get(FINISHER_ATTR, "another tunelab run")
        return StudyClaim(held=False, holder=str(holder))
    me = f"PID {os.getpid()} on {socket.gethostname()} (since {time.strftime('%H:%M:%S')})"
    study.set_user_attr(FINISHER_ATTR, me)
    log.info("this process finishes study %s (advisory lock %d)", study.study_name, key)
    return StudyClaim(held=True, connection=connection)


def _key(study_name: str) -> int:
    """The study's advisory lock key: a signed 64-bit number from its name."""
    digest = hashlib.sha1(f"tunelab:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
