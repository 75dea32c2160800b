"""Layer: worker. Keeps a connection's lease (``models.db.idp_connections``) while its run goes
on: a thread renews it every ``every_s``; when the process dies (SIGKILL, the task's hard
time limit) the renewals stop with it and the lease lapses ``seconds`` later, so a killed
run frees its connection within minutes, not after the longest a run may take."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from models.db.database import Database
from models.db.idp_connections import renew_lease

log = logging.getLogger("idsync.idp")


class LeaseKeeper:
    def __init__(
        self, database: Database, conn_id: str, owner: str, seconds: float, every_s: float
    ) -> None:
        self.database = database
        self.conn_id = conn_id
        self.owner = owner
        self.seconds = seconds
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="idp-lease", daemon=True)
        self.renewals = 0

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                with self.database.write() as session:
                    held = renew_lease(session, self.conn_id, self.owner, self.seconds)
            except Exception:  # a database blip: the next renewal tries again
                log.warning("idp connection %s: lease renewal failed", self.conn_id)
                continue
            self.renewals += 1
            if not held:
                log.warning("idp connection %s: the lease was lost", self.conn_id)
                return

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every_s + 5)
