"""The in-memory unit of work holds use cases to the port's rules, so the unit tier
catches a use case that breaks one (group commit relies on them)."""

from __future__ import annotations

import pytest

from lotse_shared.errors import NotYetApplicable
from tests.fakes.unit_of_work import InMemoryUnitOfWork, MemoryStore


class Shelf(MemoryStore):
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        super().__init__(uow)
        self.items: list[str] = []


async def wait_for_the_course(uow: InMemoryUnitOfWork, shelf: Shelf, *, write_first: bool) -> None:
    async with uow.transaction():
        if write_first:
            shelf.items.append("written")
        raise NotYetApplicable("p1", "the course is not known yet")


async def test_waiting_for_something_after_a_write_breaks_the_rule() -> None:
    uow = InMemoryUnitOfWork()
    shelf = Shelf(uow)
    with pytest.raises(AssertionError, match="NotYetApplicable after a write"):
        await wait_for_the_course(uow, shelf, write_first=True)
    assert shelf.items == []  # rolled back all the same


async def test_waiting_before_any_write_is_the_rule() -> None:
    uow = InMemoryUnitOfWork()
    with pytest.raises(NotYetApplicable):
        await wait_for_the_course(uow, Shelf(uow), write_first=False)
