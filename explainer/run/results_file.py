"""Results files: JSON lines, a header with the configuration, one row per finished unit, one writer at a time.

Format::

    {"format": "explainer-results", "version": 1, "config": {...}}
    {"<unit field>": ..., "<result field>": ...}
    ...

Rows are appended as units finish and never rewritten. A line cut by a killed writer is skipped with a
warning (its unit is computed again); a second process that tries to write the same file is refused.
Files written before the header had a ``format`` field (``{"config": ...}`` first) are read as well.
"""

from __future__ import annotations

import fcntl
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from explainer.errors import InputError
from explainer.jsonable import json_ready

FORMAT = "explainer-results"
VERSION = 1
#: Results files larger than this are refused when read (rows are small; this is ~1M rows).
MAX_RESULTS_BYTES = 512 * 1024 * 1024

Row = dict[str, Any]


def unit_key(unit: Mapping[str, Any]) -> str:
    """The identity of a unit: canonical JSON of its fields (order-free)."""
    return json.dumps(json_ready(dict(unit)), sort_keys=True, allow_nan=False)


def row_key(row: Mapping[str, Any], fields: Iterable[str]) -> str | None:
    """The unit key of a stored row, from the unit's field names (None when the row lacks one)."""
    fields = list(fields)
    if any(field not in row for field in fields):
        return None
    return unit_key({field: row[field] for field in fields})


def finished_keys(out: str | Path | None, units: Iterable[Mapping[str, Any]]) -> set[str]:
    """Keys of the ``units`` a results file holds already – for an estimate of what a rerun still has to do
    (none without a file or a complete line; the file's configuration is checked when the run opens it)."""
    if out is None:
        return set()
    path = Path(out).expanduser()
    if not path.is_file():
        return set()
    with path.open("rb") as handle:
        if b"\n" not in handle.read(1 << 16):  # no complete line: the runner starts this file afresh
            return set()
    chosen = [dict(unit) for unit in units]
    fields = sorted({field for unit in chosen for field in unit})
    wanted = {unit_key(unit) for unit in chosen}
    _, rows = read_results(path)
    return {key for row in rows if (key := row_key(row, fields)) in wanted}


def _parse(path: Path, data: bytes) -> tuple[dict[str, Any], list[Row], int]:
    """Configuration, rows, and the byte length of the complete lines (a cut last line is left out)."""
    complete = data.rfind(b"\n") + 1
    lines = data[:complete].decode("utf-8", errors="strict").splitlines()
    if complete < len(data):
        warnings.warn(
            f"{path}: the last line was cut (a writer was stopped mid-line); it is skipped and its unit "
            "will be computed again.",
            stacklevel=3,
        )
    if not lines:
        return {}, [], complete
    header = json.loads(lines[0])
    if not isinstance(header, dict) or not isinstance(header.get("config"), dict):
        raise ValueError("the first line is not a results header with a config")
    if header.get("format", FORMAT) != FORMAT or int(header.get("version", VERSION)) > VERSION:
        raise ValueError(f"format {header.get('format')!r} version {header.get('version')!r} is not one this version reads")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"line {number} is not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise ValueError(f"line {number} is not an object")
        rows.append(row)
    return header["config"], rows, complete


def _refuse(path: Path, exc: Exception) -> InputError:
    return InputError(
        f"{path} is not a results file written by explainer ({type(exc).__name__}: {exc}). "
        "Choose another out= file, or move this one away."
    )


def read_results(source: str | Path | bytes, *, name: str = "upload") -> tuple[dict[str, Any], list[Row]]:
    """The configuration and the finished rows of a results file (a path, or its bytes – an upload named
    ``name``). Only reads: nothing is run or written; the same size cap applies to both."""
    if isinstance(source, (bytes, bytearray)):
        label = Path(name)
        if len(source) > MAX_RESULTS_BYTES:
            raise InputError(f"{name} is {len(source) / 2**20:.0f} MiB; results files over "
                             f"{MAX_RESULTS_BYTES // 2**20} MiB are refused.")
        try:
            config, rows, _ = _parse(label, bytes(source))
        except (UnicodeDecodeError, ValueError, TypeError) as exc:
            raise _refuse(label, exc) from None
        if not config and not rows:
            raise InputError(f"{name} is empty: it holds no header and no rows.")
        return config, rows
    path = Path(source).expanduser()
    try:
        if not path.is_file():
            raise InputError(f"{path}: no such results file (or it is not a regular file).")
        size = path.stat().st_size
        if size > MAX_RESULTS_BYTES:
            raise InputError(f"{path} is {size / 2**20:.0f} MiB; results files over {MAX_RESULTS_BYTES // 2**20} MiB are refused.")
        config, rows, _ = _parse(path, path.read_bytes())
    except InputError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise _refuse(path, exc) from None
    if not config and not rows:
        raise InputError(f"{path} is empty: it holds no header and no rows.")
    return config, rows


def config_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two configurations (empty when they match)."""
    stored, current = json_ready(dict(stored)), json_ready(dict(current))
    return [
        f"{key}: {stored.get(key)!r} in the file, {current.get(key)!r} now"
        for key in sorted(set(stored) | set(current))
        if stored.get(key) != current.get(key)
    ]


class ResultsWriter:
    """The one writer of a results file: holds an exclusive lock from :meth:`open` to :meth:`close`."""

    def __init__(self, path: str | Path, config: Mapping[str, Any]) -> None:
        self.path = Path(path).expanduser()
        self.config = json_ready(dict(config))
        self._handle: Any = None
        self.rows: list[Row] = []

    def open(self) -> ResultsWriter:
        """Check the path, take the lock, read what is there, write the header of a new file. Before any work."""
        path = self.path
        if path.exists() and not path.is_file():
            raise InputError(f"out={path} is not a regular file (a directory or a device?); choose a file path.")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+b")  # held open (and locked) until close()
        except OSError as exc:
            raise InputError(f"Cannot write results to {path} ({exc.strerror}); choose a writable out= path.") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise InputError(
                f"{path} is being written by another process; wait for it to finish or choose another out= file "
                "(two writers would lose rows)."
            ) from None
        self._handle = handle
        try:
            self._load()
        except BaseException:
            self.close()
            raise
        return self

    def _load(self) -> None:
        handle = self._handle
        handle.seek(0)
        data = handle.read(MAX_RESULTS_BYTES + 1)
        if len(data) > MAX_RESULTS_BYTES:
            raise InputError(f"{self.path} is over {MAX_RESULTS_BYTES // 2**20} MiB; choose another out= file.")
        try:
            config, rows, complete = _parse(self.path, data)
        except (UnicodeDecodeError, ValueError, TypeError) as exc:
            raise _refuse(self.path, exc) from None
        if complete < len(data):
            handle.truncate(complete)  # drop the cut fragment so the next row starts on its own line
        if not data[:complete].strip():
            handle.truncate(0)
            self._append({"format": FORMAT, "version": VERSION, "config": self.config})
            return
        differences = config_differences(config, self.config)
        if differences:
            raise InputError(
                f"{self.path} holds results of a different configuration ({'; '.join(differences)}), so they cannot "
                "be resumed. Choose another out= file, or move this one away to start over."
            )
        self.rows = rows

    def _append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(json_ready(dict(record)), allow_nan=False) + "\n"
        self._handle.seek(0, os.SEEK_END)
        self._handle.write(line.encode("utf-8"))
        self._handle.flush()

    def append(self, row: Mapping[str, Any]) -> None:
        """Write one finished row (NaN and infinities become null)."""
        self._append(row)
        self.rows.append(json_ready(dict(row)))

    def close(self) -> None:
        """Release the lock and close the file."""
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> ResultsWriter:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
