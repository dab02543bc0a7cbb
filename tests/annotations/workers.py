"""Writer loops run in threads, spawned processes and killed subprocesses by the concurrency tests.

Also runnable: `python tests/annotations/workers.py URL ANNOTATOR N [ACK_FILE]` (repo root on PYTHONPATH).
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Union

from sqlalchemy.orm import Session, sessionmaker

from annotations import LABELS, create_engine_from_url, create_sessionmaker, save_correction


def write_corrections(target: Union[str, sessionmaker[Session]], annotator: str, post_ids: list[int], n: int,
                      ack_path: Optional[str] = None, shared: Optional[str] = None) -> int:
    """Save n corrections, one transaction each; note = '<annotator>#<i>' identifies every row.

    `target` is a database URL (a process makes its own engine) or a sessionmaker shared by threads,
    as in the app. Every other row goes to the `shared` annotator name when given (exercises
    get-or-create races). After each commit, append the index to `ack_path` (unbuffered: survives
    SIGKILL).
    """
    engine = create_engine_from_url(target) if isinstance(target, str) else None
    sessions = create_sessionmaker(engine) if engine is not None else target
    ack = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND) if ack_path else None
    try:
        for i in range(n):
            name = shared if shared and i % 2 else annotator
            with sessions.begin() as s:
                save_correction(s, post_ids[i % len(post_ids)], name, LABELS[i % 3], note=f"{annotator}#{i}")
            if ack is not None:
                os.write(ack, f"{i}\n".encode())
    finally:
        if ack is not None:
            os.close(ack)
        if engine is not None:
            engine.dispose()
    return n


if __name__ == "__main__":
    url, annotator, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    write_corrections(url, annotator, [1, 2, 3], n, sys.argv[4] if len(sys.argv) > 4 else None)
