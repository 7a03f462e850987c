"""A disk outbox for MQTT: messages wait in SQLite until the broker acknowledged them.

Events and detections are written here first (one row each, in publish order); the publisher hands them to
paho in id order and deletes a row only when paho reports the broker's PUBACK (QoS 1). So a broker outage, or
a daemon restart, loses nothing: whatever is left is sent, in order, once a connection is up again.

SQLite in WAL mode with `synchronous=NORMAL`: a commit survives the process dying (the WAL is in the OS),
not a power cut in the last moments before a checkpoint; that trade keeps a commit at tens of microseconds.
Row ids come from AUTOINCREMENT, so they never go back, even across restarts: id order is publish order.

Bounded: past `max_messages` rows or `max_bytes` of payload the outbox drops a batch (1 % of the limit) by
`policy`: `detections_first` drops the oldest detections (events only when no detections are left),
`oldest` the oldest rows of any kind. Drops are counted per kind and logged: one line when they start, then
at most one a minute with the count since, and the rest at close (a long outage is a few lines, not one per
message).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, NamedTuple

from streamseg.errors import StreamsegError

log = logging.getLogger(__name__)

POLICIES = ("detections_first", "oldest")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,          -- events | detections: what the drop policy looks at
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_kind ON messages (kind, id);
"""


class Row(NamedTuple):
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: str = "events"


class Throttle:
    """Lets a recurring warning through at most once per `interval` seconds and counts the ones held back.

    A burst of thousands of like problems becomes one line when it starts and one a minute while it lasts.
    """

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self.held = 0  # lines held back since the last one let through
        self._next = float("-inf")
        self._lock = threading.Lock()

    def allow(self) -> int | None:
        """None: hold this line back (it is counted). Else log it: the number held back before it."""
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                self.held += 1
                return None
            held, self.held, self._next = self.held, 0, now + self.interval
            return held


def kinds_text(counts: Counter[str]) -> str:
    """`Counter({"detections": 3, "events": 1})` -> "3 detections, 1 events"."""
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()) if n) or "0"


class Outbox:
    """Thread-safe: sinks `put`, the publisher's sender reads with `after`, paho's thread `ack`s."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        max_messages: int = 100_000,
        max_bytes: int = 512 * 2**20,
        policy: str = "detections_first",
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"outbox policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        self.path = Path(path)
        self.max_messages, self.max_bytes, self.policy = max_messages, max_bytes, policy
        self._lock = threading.Lock()
        lockfile = db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lockfile = lockfile = _lock(self.path)
            self._db = db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)  # autocommit
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self.count, self.bytes = self._db.execute(
                "SELECT count(*), coalesce(sum(length(payload)), 0) FROM messages"
            ).fetchone()
        except (OSError, sqlite3.Error) as exc:  # read-only, full, not a folder, not a database: one clear line
            from streamseg.sinks.base import describe_error  # here: `validate` imports this module, keep it light

            for handle in (db, lockfile):
                if handle is not None:
                    handle.close()
            reason = describe_error(exc, str(self.path))
            raise StreamsegError(f"MQTT outbox {self.path}: cannot open: {reason}") from None
        self.dropped: Counter[str] = Counter()  # kind -> messages dropped because the outbox was full
        self._unreported: Counter[str] = Counter()  # drops not in a log line yet
        self._drop_log = Throttle()
        self.acked = 0
        if self.count:
            log.info("MQTT outbox %s: %d message(s) from a previous run to deliver", self.path, self.count)

    def put(self, topic: str, payload: bytes, *, kind: str, qos: int = 1, retain: bool = False) -> None:
        with self._lock:
            if self.count + 1 > self.max_messages or self.bytes + len(payload) > self.max_bytes:
                self._make_room(len(payload))
            self._db.execute(
                "INSERT INTO messages (kind, topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, topic, payload, qos, int(retain), time.time()),
            )
            self.count += 1
            self.bytes += len(payload)

    def after(self, last_id: int, limit: int) -> list[Row]:
        """The oldest `limit` rows with an id above `last_id`, in id (= publish) order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain, kind FROM messages WHERE id > ? ORDER BY id LIMIT ?",
                (last_id, limit),
            ).fetchall()
        return [Row(i, t, bytes(p), q, bool(r), k) for i, t, p, q, r, k in rows]

    def ack(self, row_id: int) -> None:
        """The broker has the message: forget it (a row the policy already dropped is ignored)."""
        if self._delete(row_id):
            with self._lock:
                self.acked += 1

    def remove(self, row_id: int) -> bool:
        """Forget a message that will never be delivered (the publisher counts why); False if already gone."""
        return self._delete(row_id)

    def _delete(self, row_id: int) -> bool:
        with self._lock:
            size = self._db.execute("DELETE FROM messages WHERE id = ? RETURNING length(payload)", (row_id,)).fetchone()
            if size is None:
                return False
            self.count -= 1
            self.bytes -= size[0]
            return True

    def stats(self) -> dict:
        return {
            "queued": self.count,
            "bytes": self.bytes,
            "acked": self.acked,
            "dropped": {"events": self.dropped["events"], "detections": self.dropped["detections"]},
        }

    def close(self) -> None:
        with self._lock:
            if self._unreported:  # the end of the burst: the drops no line has told yet
                log.warning(
                    "MQTT outbox %s: dropped the oldest %s since the last report (in all: %s)",
                    self.path,
                    kinds_text(self._unreported),
                    kinds_text(self.dropped),
                )
                self._unreported.clear()
            self._db.close()
        self._lockfile.close()

    # -- internals ---------------------------------------------------------------------------------
    def _make_room(self, incoming: int) -> None:
        """Drop a batch of rows by policy (caller holds the lock); batches keep this off the per-message path."""
        batch = max(1, self.max_messages // 100)
        while self.count and (self.count + 1 > self.max_messages or self.bytes + incoming > self.max_bytes):
            kind_filter = "WHERE kind = 'detections'" if self.policy == "detections_first" else ""
            victims = self._db.execute(
                f"SELECT id, kind, length(payload) FROM messages {kind_filter} ORDER BY id LIMIT ?", (batch,)
            ).fetchall()
            if not victims:  # no detections left: events go, oldest first
                victims = self._db.execute(
                    "SELECT id, kind, length(payload) FROM messages ORDER BY id LIMIT ?", (batch,)
                ).fetchall()
            self._db.executemany("DELETE FROM messages WHERE id = ?", [(v[0],) for v in victims])
            kinds = Counter(v[1] for v in victims)
            self.count -= len(victims)
            self.bytes -= sum(v[2] for v in victims)
            self.dropped.update(kinds)
            self._unreported.update(kinds)
            held = self._drop_log.allow()  # a full outbox drops a batch per put: log bursts, not batches
            if held is not None:
                log.warning(
                    "MQTT outbox full (at most %d messages, %.1f MB in %s): dropped the oldest %s (in all: %s; "
                    "the next report in a minute at most)",
                    self.max_messages,
                    self.max_bytes / 2**20,
                    self.path,
                    kinds_text(self._unreported),
                    kinds_text(self.dropped),
                )
                self._unreported.clear()


def _lock(path: Path) -> IO[bytes]:
    """One process per outbox file: two daemons sharing one would deliver each other's messages twice."""
    handle = open(f"{path}.lock", "ab")  # noqa: SIM115 - held for the outbox's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StreamsegError(
            f"MQTT outbox {path} is in use by another streamseg process; give each instance its own "
            "mqtt.outbox.path (or topic_prefix)"
        ) from None
    return handle


def default_path(topic_prefix: str) -> Path:
    """Where the outbox lives when the config does not say: the service's state folder."""
    state = os.environ.get("STATE_DIRECTORY")  # set by systemd's StateDirectory=
    if state:
        folder = Path(state.split(":")[0])
    else:
        folder = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "streamseg"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in topic_prefix.strip("/")) or "streamseg"
    return folder / f"outbox-{safe}.sqlite"
