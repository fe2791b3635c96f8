"""Reads that share round trips (PostgreSQL's hot reads): each caller gets its own answer, a fault reaches every
caller waiting, and nobody waits forever."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from genkeep.errors import DatabaseUnavailable
from genkeep.tasks.backends.shared_reads import SharedReads
from tests.support.loop import run


class Database:
    """A read_many that answers keys in rounds the test releases one at a time."""

    def __init__(self) -> None:
        self.rounds: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def read_many(self, keys: list[str]) -> Mapping[str, str]:
        self.rounds.append(keys)
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return {key: key.upper() for key in keys if not key.startswith("missing")}


def test_reads_waiting_behind_busy_rounds_share_the_next_one_and_each_gets_its_own_answer() -> None:
    async def scenario() -> tuple[list[str | None], list[list[str]]]:
        database = Database()
        reads = SharedReads(database.read_many, rounds=2)
        first = [asyncio.create_task(reads.read(key)) for key in ("a", "b")]
        await asyncio.sleep(0)  # a round takes both
        waiting = [asyncio.create_task(reads.read(key)) for key in ("c", "missing-d", "c", "e")]
        await asyncio.sleep(0)
        database.release.set()
        return list(await asyncio.gather(*first, *waiting)), database.rounds

    answers, rounds = run(scenario())
    assert answers == ["A", "B", "C", None, "C", "E"]
    # The four that came while a round was busy went in one round, the repeated key asked once.
    assert rounds == [["a", "b"], ["c", "missing-d", "e"]]


def test_a_failed_round_fails_every_read_waiting_and_the_next_reads_go_again() -> None:
    async def scenario() -> tuple[list[BaseException | str | None], str | None]:
        database = Database()
        database.fail = DatabaseUnavailable("PostgreSQL: connection refused")
        reads = SharedReads(database.read_many, rounds=1)
        pending = [asyncio.create_task(reads.read(key)) for key in ("a", "b", "c")]
        await asyncio.sleep(0)
        database.release.set()
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        database.fail = None
        return list(outcomes), await reads.read("d")

    outcomes, after = run(scenario())
    assert all(isinstance(outcome, DatabaseUnavailable) for outcome in outcomes)
    assert after == "D"


def test_a_read_whose_caller_went_away_does_not_disturb_the_others() -> None:
    async def scenario() -> tuple[str | None, list[list[str]]]:
        database = Database()
        reads = SharedReads(database.read_many, rounds=1)
        busy = asyncio.create_task(reads.read("a"))
        await asyncio.sleep(0)
        gone = asyncio.create_task(reads.read("gone"))
        kept = asyncio.create_task(reads.read("b"))
        await asyncio.sleep(0)
        gone.cancel()
        database.release.set()
        await busy
        return await kept, database.rounds

    kept, rounds = run(scenario())
    assert kept == "B"
    assert rounds == [["a"], ["b"]]


def test_closing_fails_the_reads_in_flight_instead_of_leaving_them_waiting() -> None:
    async def scenario() -> None:
        database = Database()
        reads = SharedReads(database.read_many, rounds=1)
        pending = [asyncio.create_task(reads.read(key)) for key in ("a", "b")]
        await asyncio.sleep(0)
        reads.close()
        for read in pending:
            with pytest.raises(DatabaseUnavailable):
                await asyncio.wait_for(read, timeout=5)

    run(scenario())
