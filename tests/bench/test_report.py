"""The bench report's new tables: what a reader of docs/benchmarks.md sees for a run (no load, no timing)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH_DIR))

import catalog  # noqa: E402 - bench/ is not a package; it goes on the path first
import idle_page  # noqa: E402
import page_weight  # noqa: E402
import storage_serve  # noqa: E402
from fixed_rate import FixedRate  # noqa: E402
from report import (  # noqa: E402
    BackendResult,
    Layout,
    box_table,
    fixed_rate_table,
    other_table,
    route_table,
    worker_memory_rows,
)
from routes import RouteRun  # noqa: E402
from sweep import Sweep  # noqa: E402
from worker_memory import WorkerMemory  # noqa: E402
from wrk import Measured  # noqa: E402


def generator_json(**overrides: object) -> dict[str, object]:
    """What bench/openloop.mjs prints, for a healthy run unless overridden."""
    raw: dict[str, object] = {
        "rate": 3500, "seconds": 10, "sent": 35000, "completed": 35000, "errors": 0, "non_2xx": 0,
        "socket_errors": 0, "unanswered": 0, "unanswered_min_ms": None, "achieved_rps": 3499.2, "p50_ms": 1.2,
        "p90_ms": 2.5, "p99_ms": 7.94, "p999_ms": 15.3, "max_ms": 21.0,
        "schedule_lag_ms": {"p50": 0.6, "p99": 2.1, "max": 9.0}, "kept_up": True, "warning": None,
        "warmup_seconds": 1, "sockets": 128, "generator_cpu_share": 0.4,
    }
    raw.update(overrides)
    return raw


def closed(route: str, requests: int) -> Measured:
    return Measured(route, requests, 10.0, 9.0, 60.0, 90.0, 0, 0)


def backend(fixed: list[FixedRate]) -> BackendResult:
    measured = {"ceiling": closed("ceiling", 70_000), "poll": closed("poll", 50_000),
                "recovery": closed("recovery", 40_000), "history": closed("history", 7_000)}
    result = BackendResult("SQLite", 1.0, True)
    result.routes = RouteRun(measured, 80.0, 120.0, 20_000, {})
    result.fixed_rate = fixed
    return result


def rows(lines: list[str], route: str) -> list[list[str]]:
    found = [line for line in lines if line.startswith(f"| SQLite | {route} |")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in found]


def row(lines: list[str], route: str) -> list[str]:
    (only,) = rows(lines, route)
    return only


def test_a_route_that_keeps_up_meets_the_goal_and_shows_its_load() -> None:
    lines = fixed_rate_table([backend([FixedRate.from_json("poll", "ceiling", generator_json())])])
    cells = row(lines, "poll")
    assert cells[2:10] == ["3,500", "70%", "1.2", "7.9", "15.3", "21.0", "0", "3,499"]
    assert cells[-1] == "met"
    assert not any("fell behind" in line for line in lines)


def test_an_overloaded_route_misses_its_unanswered_tail_says_at_least_and_its_own_rate_follows() -> None:
    overloaded = generator_json(completed=20_000, errors=15_000, unanswered=15_000, unanswered_min_ms=2000.2,
                                achieved_rps=2000.0, p50_ms=1500.0, p99_ms=4000.0, p999_ms=9000.0, max_ms=11000.4)
    own = generator_json(rate=350, sent=3500, completed=3500, achieved_rps=350.0, p99_ms=12.0)
    lines = fixed_rate_table([backend([FixedRate.from_json("history", "ceiling", overloaded),
                                       FixedRate.from_json("history", "route", own)])])
    at_rule, at_own = rows(lines, "history")
    assert at_rule[2:9] == ["3,500", "500%", "1500.0", "≥4,000", "≥9,000", "≥11,000", "15,000"]
    assert at_rule[-1] == "MISSED"
    assert at_own[2:4] == ["350 (own)", "50%"]
    assert at_own[-1] == "(met)"


def test_errors_alone_miss_the_goal() -> None:
    failing = generator_json(completed=34_990, errors=10, non_2xx=10)
    assert row(fixed_rate_table([backend([FixedRate.from_json("poll", "ceiling", failing)])]), "poll")[-1] == "MISSED"


def test_a_generator_that_fell_behind_is_named_under_the_table() -> None:
    late = generator_json(kept_up=False, schedule_lag_ms={"p50": 1.0, "p99": 12.5, "max": 40.0})
    lines = fixed_rate_table([backend([FixedRate.from_json("recovery", "ceiling", late)])])
    assert row(lines, "recovery")[10] == "12.5 (late)"
    assert any("fell behind its schedule on SQLite recovery" in line for line in lines)


def test_the_closed_loop_p99_is_labelled_and_judges_nothing() -> None:
    lines = route_table([backend([])])
    assert "p99 ms (saturated)" in lines[0]
    assert not any("p99<" in line for line in lines)


def test_worker_memory_shows_idle_once_then_each_types_peak_and_what_it_kept() -> None:
    memory = [WorkerMemory("WHITE_BACKGROUND", 89.0, 493.2, 420.7, 2, "VmHWM"),
              WorkerMemory("CLOTHING_CHANGE", 89.4, 683.8, 645.2, 2, "VmHWM")]
    lines = worker_memory_rows(memory, None)
    assert lines[0] == "| local worker | RSS idle, a fresh `genkeep worker` (2 threads) | 89 MB | |"
    assert lines[1:] == [
        "| local worker | peak RSS during one WHITE_BACKGROUND at 1024 px (VmHWM) | 493 MB | |",
        "| local worker | RSS idle after that task | 421 MB | |",
        "| local worker | peak RSS during one CLOTHING_CHANGE at 1024 px (VmHWM) | 684 MB | |",
        "| local worker | RSS idle after that task | 645 MB | |",
    ]


def test_worker_memory_not_measured_says_why() -> None:
    assert worker_memory_rows([], "skipped (--skip-local)") == ["| local worker | memory | skipped (--skip-local) | |"]


def test_the_targets_are_issue_10s_for_each_database() -> None:
    sqlite = backend([])
    postgres = BackendResult("PostgreSQL", 1.0, True)
    postgres.routes = RouteRun({"ceiling": closed("ceiling", 10_000), "poll": closed("poll", 7_000),
                                "recovery": closed("recovery", 5_500), "history": closed("history", 3_100),
                                "accept": closed("accept", 3_100)}, 80.0, 120.0, 20_000, {})
    lines = route_table([sqlite, postgres])
    # SQLite: poll 50,000 / 70,000 = 0.71 < 0.8; recovery 0.57 < 0.7; history 0.10 < 0.3.
    assert [row(lines, route)[6] for route in ("poll", "recovery", "history")] == [
        "≥0.8 MISSED", "≥0.7 MISSED", "≥0.3 MISSED"]
    judged = {cells[1]: cells[6] for cells in (
        [cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("| PostgreSQL |"))}
    assert judged == {"ceiling": "", "poll": "≥0.6 met", "recovery": "≥0.5 met", "history": "≥0.3 met",
                      "accept": "≥300/s met"}


def test_the_whole_box_is_judged_by_its_own_ceiling_and_its_databases_targets() -> None:
    result = backend([])
    result.box = {"ceiling": closed("ceiling", 100_000), "poll": closed("poll", 81_000),
                  "recovery": closed("recovery", 65_000), "history": closed("history", 31_000)}
    result.box_processes = 2
    lines = box_table([result])
    cells = {line.split("|")[2].strip(): [cell.strip() for cell in line.strip("|").split("|")]
             for line in lines if line.startswith("| SQLite, 2 processes |")}
    assert cells["poll"][5:7] == ["0.81", "≥0.8 met"]
    assert cells["recovery"][5:7] == ["0.65", "≥0.7 MISSED"]
    assert cells["history"][5:7] == ["0.31", "≥0.3 met"]


def test_the_sweep_is_judged_on_the_time_ordered_layout_and_the_scattered_one_is_reported() -> None:
    result = backend([])
    result.sweep = Sweep(20_000, 20_000, 84.0, 0.4)
    result.scattered = Layout(30.0, False, Sweep(20_000, 20_000, 240.0, 0.5))
    lines = [line for line in other_table([result], {"available": False}) if "one sweep, 20,000" in line]
    assert len(lines) == 2
    assert "in time order" in lines[0] and lines[0].endswith("| 84 ms | <100 ms met |")
    assert "scattered" in lines[1] and lines[1].endswith("| 240 ms | |")


def test_rewriting_the_document_keeps_each_kept_section_once(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    idle = f"{idle_page.SECTION}\nRequests per minute.\n"
    storage = f"{storage_serve.SECTION}\n## Serving a 1 MB image: data folder vs S3\nTables.\n"
    doc.write_text(f"# Benchmarks\n\nOld numbers.\n\n{idle}\n{storage}")
    for _ in range(3):  # what `make bench` writes, run after run
        doc.write_text("# Benchmarks\n\nNew numbers.\n" + idle_page.kept_section(doc) + storage_serve.kept_section(doc))
    text = doc.read_text()
    assert text.count(storage_serve.SECTION) == 1
    assert text.count(idle_page.SECTION) == 1
    assert "Requests per minute." in text and "Tables." in text and "Old numbers." not in text


def test_each_section_measured_apart_ends_where_the_next_begins(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    idle = f"{idle_page.SECTION}\nRequests per minute.\n"
    storage = f"{storage_serve.SECTION}\n## Serving a 1 MB image: data folder vs S3\nTables.\n"
    weight = f"{page_weight.SECTION}\nBytes.\n"
    photos = f"{catalog.SECTION}\nSeconds.\n"
    doc.write_text(f"# Benchmarks\n\nOld numbers.\n\n{idle}\n{storage}\n{weight}\n{photos}")
    for _ in range(3):  # what `make bench` writes, run after run
        doc.write_text("# Benchmarks\n\nNew numbers.\n" + idle_page.kept_section(doc) + storage_serve.kept_section(doc)
                       + page_weight.kept_section(doc) + catalog.kept_section(doc))
    text = doc.read_text()
    for section in (idle_page.SECTION, storage_serve.SECTION, page_weight.SECTION, catalog.SECTION):
        assert text.count(section) == 1, section
    assert text.index("Tables.") < text.index("Bytes.") < text.index("Seconds.")
    page_weight.replace_section(f"\n{page_weight.SECTION}\nNew bytes.\n", doc)
    assert "New bytes." in doc.read_text() and "Bytes." not in doc.read_text() and "Seconds." in doc.read_text()
