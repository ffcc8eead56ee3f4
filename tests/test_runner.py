"""explainer.run: results files (resume, lock, cut lines, config checks), a real SIGKILL, and a real Ray cluster."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from explainer.errors import InputError
from explainer.run import ResultsWriter, read_results, run_units


def make_square_worker(offset: int):
    """A worker factory the tests share: rows depend only on the unit and the offset."""
    def work(unit):
        return {"square": unit["i"] ** 2 + offset, "nan": float("nan")}
    return work


UNITS = [{"i": i, "tag": "a"} for i in range(5)]


def test_rows_come_back_in_unit_order_and_the_file_holds_them(tmp_path):
    out = tmp_path / "rows.jsonl"
    seen = []
    rows = run_units(UNITS, functools.partial(make_square_worker, 1), out=out, config={"offset": 1},
                     progress=lambda done, total, row: seen.append((done, total)))
    assert [row["square"] for row in rows] == [1, 2, 5, 10, 17]
    assert seen == [(k, 5) for k in range(1, 6)]
    lines = out.read_text().splitlines()
    assert json.loads(lines[0]) == {"format": "explainer-results", "version": 1, "config": {"offset": 1}}
    assert "NaN" not in out.read_text() and json.loads(lines[1])["nan"] is None  # JSON never holds a NaN token
    config, stored = read_results(out)
    assert config == {"offset": 1} and [row["i"] for row in stored] == [0, 1, 2, 3, 4]


def test_a_rerun_resumes_without_redoing_finished_units(tmp_path):
    out = tmp_path / "rows.jsonl"
    run_units(UNITS[:3], functools.partial(make_square_worker, 0), out=out, config={"offset": 0})
    calls = []

    def counting_factory():
        work = make_square_worker(0)

        def counted(unit):
            calls.append(unit["i"])
            return work(unit)
        return counted

    rows = run_units(UNITS, counting_factory, out=out, config={"offset": 0})
    assert calls == [3, 4] and [row["square"] for row in rows] == [0, 1, 4, 9, 16]
    assert len(out.read_text().splitlines()) == 1 + 5  # appended, never rewritten


def test_another_configuration_is_refused_with_the_difference(tmp_path):
    out = tmp_path / "rows.jsonl"
    run_units(UNITS[:1], functools.partial(make_square_worker, 0), out=out, config={"offset": 0})
    with pytest.raises(InputError, match=r"different configuration \(offset: 0 in the file, 1 now\)"):
        run_units(UNITS, functools.partial(make_square_worker, 1), out=out, config={"offset": 1})


def test_a_cut_last_line_is_skipped_with_a_warning_and_recomputed(tmp_path):
    out = tmp_path / "rows.jsonl"
    run_units(UNITS[:3], functools.partial(make_square_worker, 0), out=out, config={})
    text = out.read_text()
    out.write_text(text[: text.rfind('{"i": 2')] + '{"i": 2, "tag": "a", "squ')  # a writer killed mid-line
    with pytest.warns(UserWarning, match="last line was cut"):
        rows = run_units(UNITS[:3], functools.partial(make_square_worker, 0), out=out, config={})
    assert [row["square"] for row in rows] == [0, 1, 4]
    assert [json.loads(line)["i"] for line in out.read_text().splitlines()[1:]] == [0, 1, 2]


def test_a_second_writer_is_refused_and_bad_paths_fail_before_any_work(tmp_path):
    out = tmp_path / "rows.jsonl"
    with ResultsWriter(out, {"offset": 0}):
        with pytest.raises(InputError, match="being written by another process"):
            run_units(UNITS, functools.partial(make_square_worker, 0), out=out, config={"offset": 0})
    calls = []
    with pytest.raises(InputError, match="not a regular file"):
        run_units(UNITS, lambda: calls.append(1) or make_square_worker(0), out=tmp_path, config={})
    (tmp_path / "junk.jsonl").write_text("this is not json\n")
    with pytest.raises(InputError, match="not a results file"):
        run_units(UNITS, lambda: calls.append(1) or make_square_worker(0), out=tmp_path / "junk.jsonl", config={})
    assert calls == []


def test_bad_units_and_backends_get_clear_errors():
    factory = functools.partial(make_square_worker, 0)
    with pytest.raises(InputError, match="list of dicts"):
        run_units("abc", factory)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="the same"):
        run_units([{"i": 1}, {"i": 1}], factory)
    with pytest.raises(InputError, match="backend must be one of local, ray"):
        run_units(UNITS, factory, backend="spark")
    with pytest.raises(InputError, match="address= is for backend='ray'"):
        run_units(UNITS, factory, address="auto")


KILLABLE = textwrap.dedent("""
    import sys, time
    from explainer.run import run_units

    def factory():
        def work(unit):
            time.sleep(0.15)
            return {"value": unit["i"] * 10}
        return work

    run_units([{"i": i} for i in range(30)], factory, out=sys.argv[1], config={"study": "kill"})
""")


def test_a_killed_run_loses_at_most_the_rows_in_flight_and_resumes(tmp_path):
    script = tmp_path / "killable.py"
    script.write_text(KILLABLE)
    out = tmp_path / "killed.jsonl"
    child = subprocess.Popen([sys.executable, str(script), str(out)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 6):
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    finished = len(out.read_text().splitlines()) - 1
    assert 5 <= finished < 30
    subprocess.run([sys.executable, str(script), str(out)], check=True, timeout=120)
    _, rows = read_results(out)
    assert sorted(row["i"] for row in rows) == list(range(30))  # nothing twice, nothing lost
    assert all(row["value"] == row["i"] * 10 for row in rows)


RAY_SCRIPT = textwrap.dedent("""
    import functools, json, sys
    from explainer.run import run_units

    def make_worker(offset):
        import os
        def work(unit):
            return {"square": unit["i"] ** 2 + offset, "pid": os.getpid()}
        return work

    rows = run_units([{"i": i} for i in range(8)], functools.partial(make_worker, 2), out=sys.argv[1],
                     config={"offset": 2}, backend="ray", address="auto", resources={"num_cpus": 1})
    print(json.dumps(rows))
""")


def test_the_ray_backend_gives_the_local_rows_on_a_real_cluster(private_ray_cluster, tmp_path):
    result = private_ray_cluster.run(RAY_SCRIPT, str(tmp_path / "ray.jsonl"))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert len({row.pop("pid") for row in rows}) == 2  # two worker processes on the 2-CPU cluster
    local = run_units([{"i": i} for i in range(8)], functools.partial(make_square_worker, 2))
    assert rows == [{k: v for k, v in row.items() if k != "nan"} for row in local]
    _, stored = read_results(tmp_path / "ray.jsonl")
    assert sorted(row["i"] for row in stored) == list(range(8))


def test_without_a_cluster_the_ray_backend_says_how_to_start_one(tmp_path):
    script = tmp_path / "no_cluster.py"
    script.write_text(textwrap.dedent("""
        from explainer.errors import InputError
        from explainer.run import run_units
        try:
            run_units([{"i": 1}], dict, backend="ray", address="127.0.0.1:1")
        except InputError as exc:
            print("REFUSED", exc)
    """))
    result = subprocess.run(["unshare", "-n", sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0 and "unshare" in result.stderr:
        pytest.skip(f"unshare -n not permitted: {result.stderr.strip()}")
    assert "REFUSED" in result.stdout and "ray start --head" in result.stdout, result.stdout + result.stderr[-2000:]


def test_results_file_reading_only_reads(tmp_path):
    out = tmp_path / "rows.jsonl"
    run_units(UNITS[:2], functools.partial(make_square_worker, 0), out=out, config={"offset": 0})
    before = out.stat().st_mtime_ns, out.read_bytes()
    read_results(out)
    assert (out.stat().st_mtime_ns, out.read_bytes()) == before
    with pytest.raises(InputError, match="no such results file"):
        read_results(tmp_path / "missing.jsonl")
    assert Path(out).is_file()


def test_an_upload_is_read_from_its_bytes_under_the_same_bounds(tmp_path):
    out = tmp_path / "rows.jsonl"
    run_units(UNITS[:2], functools.partial(make_square_worker, 0), out=out, config={"offset": 0})
    assert read_results(out.read_bytes(), name="rows.jsonl") == read_results(out)
    with pytest.raises(InputError, match="upload.jsonl is not a results file"):
        read_results(b"not json\n", name="upload.jsonl")
    with pytest.raises(InputError, match="empty"):
        read_results(b"", name="empty.jsonl")
