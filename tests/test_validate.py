"""Each validate_* function catches the corruption it is about."""

from __future__ import annotations

import numpy as np
import pytest

from dnuma._kernels import buddy as kb
from dnuma.mm import validate as v
from dnuma.mm.constants import MIGRATE_MOVABLE, PG_head
from dnuma.mm.errors import ValidationError
from dnuma.mm.machine import boot
from dnuma.mm.memlayout import MemLayout


@pytest.fixture
def m():
    m = boot(2, "32M", 2)
    for cpu in (0, 1):
        for o in (0, 0, 1, 3, 5):
            m.alloc_pages(o, cpu=cpu)
    v.validate_all(m)
    return m


def big_free(m):
    """(gz, head pfn) of some free order-10 movable block."""
    gz = int(np.flatnonzero(m.S.free_head[:, 10, MIGRATE_MOVABLE] >= 0)[0])
    return gz, int(m.S.free_head[gz, 10, MIGRATE_MOVABLE])


def test_counters(m):
    m.S.zone_free[1] += 1
    with pytest.raises(ValidationError, match=r"\[counters\].*NR_FREE_PAGES"):
        v.validate_counters(m)


def test_present_counter(m):
    m.S.zone_present[1] -= 1
    with pytest.raises(ValidationError, match=r"\[conservation\]"):
        v.validate_all(m)


def test_broken_list_link(m):
    _gz, head = big_free(m)
    m.S.lru_prev[int(m.S.lru_next[head])] = 12345
    with pytest.raises(ValidationError, match=r"\[free-lists\].*links are broken"):
        v.validate_lists(m)


def test_wrong_order_on_list(m):
    _gz, head = big_free(m)
    m.S.page_order[head] = 9
    with pytest.raises(ValidationError, match=r"another order"):
        v.validate_lists(m)


def test_page_in_no_state(m):
    head = int(np.flatnonzero(m.S.page_flags & PG_head)[0])
    m.S.page_flags[head] &= np.uint8(0xFF ^ PG_head)
    with pytest.raises(ValidationError, match=r"\[page-state\]"):
        v.validate_page_states(m)


def test_unmerged_buddies(m):
    S = m.S
    gz, head = big_free(m)
    kb.del_from_free_list(S, head, gz, 10, MIGRATE_MOVABLE)
    kb.add_to_free_list(S, head, gz, 9, MIGRATE_MOVABLE, False)
    kb.add_to_free_list(S, head + 512, gz, 9, MIGRATE_MOVABLE, False)
    v.validate_lists(m)
    v.validate_counters(m)
    with pytest.raises(ValidationError, match=r"\[buddies-merged\]"):
        v.validate_buddies_merged(m)


def test_free_page_on_the_wrong_node(m):
    m.commit(MemLayout.push(m.ram_ranges(), 1))
    v.validate_all(m)
    free = np.flatnonzero(m.free_mask())
    m.S.page_nid[free[0]] = 0
    with pytest.raises(ValidationError, match=r"\[layout\] free pfn"):
        v.validate_layout(m)


def test_unmarked_misplaced_allocation(m):
    m.commit(MemLayout.push(m.ram_ranges(), 1))
    heads = np.flatnonzero(m.mark_mask())
    assert heads.size
    m.S.page_mark[heads[0] >> 3] &= ~np.uint8(1 << (heads[0] & 7))
    with pytest.raises(ValidationError, match=r"not marked"):
        v.validate_layout(m)
