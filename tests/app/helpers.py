"""Shared by the app tests: what the database and the data folder hold, to show that a refused call wrote nothing."""
from __future__ import annotations

from sqlalchemy import func, select


def db_snapshot(ctx) -> dict:
    """{table: row count} of every table, plus every file under the data folder but the database's own; taken
    once the app's background work (the next post prepared ahead, with its prediction) is done."""
    from annotations.models import Base

    ctx.background.wait_idle()
    with ctx.sessions() as s:
        counts = {t.name: s.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}
    files = sorted(str(p.relative_to(ctx.settings.data_dir)) for p in ctx.settings.data_dir.rglob("*")
                   if p.is_file() and not p.name.startswith("annotations.sqlite"))
    return {"rows": counts, "files": files}
