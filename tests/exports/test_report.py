"""`taskscope report`: a self-contained HTML file whose figures are the database's truth."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from fixture_paths import PARSL_FIXTURE_DB, PARSL_RUN

from taskscope.cli import main
from taskscope.store.synthetic import SyntheticRun, create_database

SIZE_LIMIT = 5_000_000


def figures_in(html: str) -> dict[str, dict]:
    return {
        name: json.loads(body)
        for name, body in re.findall(
            r'<script type="application/json" data-figure="([^"]+)">(.*?)</script>', html, re.DOTALL
        )
    }


def write_report(tmp_path: Path, db: Path, *extra: str, name: str = "report.html") -> str:
    out = tmp_path / name
    assert main(["report", str(db), "-o", str(out), *extra]) == 0
    return out.read_text(encoding="utf-8")


def test_parsl_report_shows_the_run_and_every_app(tmp_path: Path):
    html = write_report(tmp_path, PARSL_FIXTURE_DB, "--run", PARSL_RUN[:8])
    assert PARSL_RUN in html and "diamond-sample" in html
    conn = sqlite3.connect(PARSL_FIXTURE_DB)
    apps = dict(
        conn.execute(
            "SELECT task_func_name, COUNT(*) FROM task WHERE run_id = ? GROUP BY 1", (PARSL_RUN,)
        )
    )
    tries = conn.execute("SELECT COUNT(*) FROM try WHERE run_id = ?", (PARSL_RUN,)).fetchone()[0]
    conn.close()
    for app, count in apps.items():
        row = re.search(rf'<td class="mono">{app}</td><td class="num">([\d,]+)</td>', html)
        assert row is not None, app
        assert int(row.group(1).replace(",", "")) == count
    assert f'<th>Tries</th><td class="num">{tries}</td>' in html
    figures = figures_in(html)
    assert {"states", "timeline", "workers", "cpu", "memory", "dist_duration"} <= set(figures)
    states = figures["states"]["data"][0]
    assert dict(zip(states["y"], states["x"], strict=True))["failed"] == 4


def test_failure_groups_and_critical_path(tmp_path: Path):
    html = write_report(tmp_path, PARSL_FIXTURE_DB)
    conn = sqlite3.connect(PARSL_FIXTURE_DB)
    failed_tries = conn.execute(
        "SELECT COUNT(*) FROM try y JOIN task t USING (task_id, run_id) WHERE run_id = ? AND "
        "t.task_func_name = 'always_fail' AND y.task_fail_history != ''",
        (PARSL_RUN,),
    ).fetchone()[0]
    conn.close()
    row = re.search(
        r"deliberate failure for input &lt;n&gt; @ always_fail</td>\s*"
        r'<td class="num">(\d+)</td><td class="num">(\d+)</td>',
        html,
    )
    assert row is not None
    assert (int(row.group(1)), int(row.group(2))) == (failed_tries, 4)
    assert '<section id="critical-path">' in html and "With unlimited workers" in html


def test_report_has_no_external_reference(tmp_path: Path):
    html = write_report(tmp_path, PARSL_FIXTURE_DB)
    # No element loads anything: no src, no stylesheet link, no CSS import or url().
    assert re.search(r"<(script|img|iframe|link)[^>]*\s(src|href)=", html) is None
    assert "@import" not in html and "url(" not in html.split("plotly-gzip-base64")[0]
    assert "taskscope report" in html and len(html) < SIZE_LIMIT


def test_timeline_busy_time_is_the_tries_run_time(tmp_path: Path, taskscope_db: Path):
    html = write_report(tmp_path, taskscope_db, "--run", "run-completed")
    timeline = figures_in(html)["timeline"]
    conn = sqlite3.connect(taskscope_db)
    truth = dict(
        conn.execute(
            "SELECT t.task_func_name, SUM((julianday(y.task_try_time_returned) - "
            "julianday(y.task_try_time_running)) * 86400) FROM try y JOIN task t USING (task_id, "
            "run_id) "
            "WHERE run_id = 'run-completed' GROUP BY 1"
        )
    )
    finished = conn.execute(
        "SELECT COUNT(*) FROM task WHERE run_id = 'run-completed' "
        "AND task_time_returned IS NOT NULL"
    ).fetchone()[0]
    conn.close()
    span = re.search(r"intervals of ([\d.]+) (ms|s)", html)
    width = float(span.group(1)) / (1000 if span.group(2) == "ms" else 1)
    areas = {t["name"]: t for t in timeline["data"] if t.get("stackgroup")}
    assert set(areas) == set(truth)
    for app, seconds in truth.items():
        # the width is printed to 2 decimals and the values to 3: a percent of slack
        assert sum(areas[app]["y"]) * width == pytest.approx(seconds, rel=0.01), app
    bars = next(t for t in timeline["data"] if t["type"] == "bar")
    assert sum(bars["y"]) == finished


def test_unknown_and_ambiguous_runs_are_clear_errors(tmp_path: Path, taskscope_db: Path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", str(taskscope_db), "--run", "nope", "-o", str(out)]) == 1
    assert "no run 'nope'" in capsys.readouterr().err
    assert main(["report", str(taskscope_db), "--run", "run-", "-o", str(out)]) == 1
    assert "ambiguous" in capsys.readouterr().err
    assert not out.exists()
    assert main(["report", str(taskscope_db), "-o", str(tmp_path / "missing" / "r.html")]) == 1
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.browser
@pytest.mark.parametrize("compressed", [True, False], ids=["gzipped-plotly", "plain-plotly"])
def test_report_draws_offline_without_console_errors(tmp_path: Path, offline_page, compressed):
    extra = () if compressed else ("--uncompressed",)
    html = write_report(tmp_path, PARSL_FIXTURE_DB, *extra)
    expected = len(figures_in(html))
    offline_page.goto((tmp_path / "report.html").as_uri())
    offline_page.wait_for_function("() => document.body.dataset.plots", timeout=30_000)
    assert offline_page.evaluate("() => document.body.dataset.plots") == "drawn"
    offline_page.wait_for_function(
        f"() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= {expected}",
        timeout=30_000,
    )
    assert offline_page.errors == []
    assert offline_page.requests == [(tmp_path / "report.html").as_uri()]


def test_report_of_100k_tasks_stays_under_5_mb(tmp_path: Path):
    db = create_database(
        tmp_path / "big.db",
        [SyntheticRun("big", tasks=100_000, workers=16, hosts=4, samples_per_try=1)],
    )
    html = write_report(tmp_path, db)
    assert len(html.encode()) < SIZE_LIMIT
    assert '<th>Total</th><td class="num">100,000</td>' in html
