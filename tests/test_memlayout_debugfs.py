"""The RFC's debugfs write protocol (memlayout/{start,end,node,commit,clear})."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from dnuma._kernels import state as _st
from dnuma.mm.constants import N_MEMORY, N_ONLINE
from dnuma.mm.errors import DnumaError, LayoutError, NotifyVeto
from dnuma.mm.machine import Machine
from dnuma.mm.memlayout import MemLayout
from dnuma.mm.memlayout_debugfs import (
    DebugfsError,
    DebugfsWrite,
    MemlayoutDebugfs,
    ScriptError,
    format_script,
    kstrtoull,
    parse_script,
    run_script,
)
from dnuma.mm.validate import validate_all

ROOT = "/sys/kernel/debug/memlayout"


def user_state(d: MemlayoutDebugfs) -> tuple:
    return (d.start, d.end, d.node, d.commit_value, d.clear_value, d.pending)


# ---------------------------------------------------------------- values
@pytest.mark.parametrize(("text", "val"), [
    ("4096", 4096), ("0x1000", 4096), ("0X1f", 31), ("010", 8), ("0", 0), ("0x0", 0),
    ("+7", 7), (" 0x1fff\n", 0x1FFF), ("18446744073709551615", 2**64 - 1),
])
def test_kstrtoull_accepts_what_the_kernel_does(text, val):
    assert kstrtoull(text) == val


@pytest.mark.parametrize(("text", "errno"), [
    ("", "EINVAL"), ("0x", "EINVAL"), ("08", "EINVAL"), ("-1", "EINVAL"), ("12abc", "EINVAL"),
    ("0x1g", "EINVAL"), ("1 2", "EINVAL"), ("1_000", "EINVAL"), ("٣", "EINVAL"),
    ("18446744073709551616", "ERANGE"),
])
def test_kstrtoull_refuses_garbage(text, errno):
    with pytest.raises(DebugfsError) as ei:
        kstrtoull(text)
    assert ei.value.errno == errno


# ---------------------------------------------------------------- the protocol
def test_node_write_adds_the_range_and_resets_start_and_end(small_machine):
    d = MemlayoutDebugfs(small_machine())
    d.write("start", "0x800")
    d.write("end", "0xfff\n")
    assert d.read("start") == "0x0000000000000800\n" and d.read("end") == "0x0000000000000fff\n"
    d.write("node", "0")
    assert d.pending == [(0x800, 0xFFF, 0)]
    assert (d.start, d.end) == (0, 0) and d.read("start") == "0x0000000000000000\n"
    assert d.read("node") == "0\n"
    # start = end = 0 is a valid one-pfn range
    d.write("node", "1")
    assert d.pending == [(0, 0, 1), (0x800, 0xFFF, 0)] and d.read("node") == "1\n"


def test_script_reproduces_a_stripe(small_machine):
    m = small_machine()
    text = """
    # the RFC test script's stripe: blocks of 0x400 pfns to nodes 0, 1, 0, 1
    start 0x0
    end 0x3ff
    node 0
    start 0x400
    end 0x7ff
    node 1
    start 2048      # decimal works too
    end 0xbff
    node 0
    start 0xc00
    end 0xfff
    node 1
    commit
    """
    reports = run_script(m, parse_script(text, "stripe.sh"))
    assert len(reports) == 1 and reports[0].seq == 1 == m.seq
    assert m.layout == MemLayout.stripe(m.ram_ranges(), [0, 1], 0x400)
    validate_all(m)
    free = np.flatnonzero(m.free_mask())
    assert np.array_equal(m.S.page_nid[free], (free // 0x400) % 2)


def test_format_script_round_trips_in_both_forms(small_machine):
    for shell in (False, True):
        m = small_machine()
        want = MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256)
        text = format_script(want, shell=shell)
        writes = parse_script(text)
        assert len(writes) == 3 * len(want) + 1 and writes[-1].name == "commit"
        if shell:
            assert text.splitlines()[0] == f"echo 0x0 > {ROOT}/start"
        (rep,) = run_script(m, writes)
        assert m.layout == want and rep.nodes_onlined == [2]
        validate_all(m)


def test_push_to_a_new_node_brings_it_online(small_machine):
    m = small_machine()
    d = MemlayoutDebugfs(m)
    assert not m.topo.node_states[N_ONLINE, 3]
    for name, value in (("start", "0"), ("end", "0xfff"), ("node", "3")):
        d.write(name, value)
    rep = d.write("commit", "1")
    assert rep is not None and d.last_report is rep
    assert rep.nodes_onlined == [3] and rep.nodes_offlined == []
    assert m.topo.node_states[N_ONLINE, 3] and m.topo.node_states[N_MEMORY, 3]
    assert m.NODE_DATA(3).node_present_pages == 4096
    assert m.NODE_DATA(0).node_present_pages == 0 == m.NODE_DATA(1).node_present_pages
    assert d.pending == [] and d.read("commit") == "1\n"
    assert ("add", "/devices/system/node/node3", "node") in m.uevents
    validate_all(m)


def test_partial_layout_leaves_uncovered_pfns_alone(small_machine):
    m = small_machine()
    d = MemlayoutDebugfs(m)
    d.write("start", "0x100")
    d.write("end", "0x1ff")
    d.write("node", "1")
    d.write("commit", "1")
    assert list(m.layout) == [(0x100, 0x1FF, 1)]
    assert m.effective.pfn_to_nid(0xFF) == 0 and m.effective.pfn_to_nid(0x100) == 1
    assert m.NODE_DATA(1).node_present_pages == 0x800 + 0x100
    validate_all(m)


def test_clear_drops_the_pending_layout(small_machine, unchanged):
    m = small_machine()
    d = MemlayoutDebugfs(m)
    d.write("start", "0")
    d.write("end", "0xfff")
    d.write("node", "1")
    d.write("start", "0x10")  # start/end are not touched by clear
    d.write("clear", "1")
    assert d.pending == [] and d.start == 0x10 and d.read("clear") == "1\n"
    # nothing pending: commit does nothing (the kernel commits only an existing user_ml)
    with unchanged(m):
        assert d.write("commit", "1") is None
    assert m.seq == 0 and d.last_report is None
    # the range that was pending no longer overlaps anything
    d.write("start", "0")
    d.write("end", "0xfff")
    d.write("node", "0")
    assert d.pending == [(0, 0xFFF, 0)]


def test_commit_and_clear_take_any_number_and_store_its_low_byte(small_machine):
    m = small_machine()
    d = MemlayoutDebugfs(m)
    d.write("end", "0x7ff")
    d.write("node", "1")
    assert d.write("commit", "0x102") is not None  # even 0 would commit, as in the kernel
    assert d.read("commit") == "2\n" and m.seq == 1
    d.write("clear", "0")
    assert d.read("clear") == "0\n"


def test_full_paths_are_accepted(small_machine):
    m = small_machine()
    d = MemlayoutDebugfs(m)
    d.write(f"{ROOT}/start", "0x800")
    d.write("memlayout/end", "0xfff")
    d.write(f"{ROOT}/node", "0")
    assert d.pending == [(0x800, 0xFFF, 0)]
    assert d.read(f"{ROOT}/node") == "0\n"


# ---------------------------------------------------------------- error paths
def _loaded(small_machine: Callable[..., Machine]) -> MemlayoutDebugfs:
    d = MemlayoutDebugfs(small_machine(max_numnodes=4))
    d.write("start", "0x100")
    d.write("end", "0x1ff")
    d.write("node", "1")
    d.write("start", "0x300")
    d.write("end", "0x200")  # start > end, not yet refused
    return d


@pytest.mark.parametrize(("name", "value", "errno", "match"), [
    ("node", "4", "EINVAL", r"memlayout/node: node 4 >= nr_node_ids \(4\)"),
    ("node", "4294967298", "EINVAL", "nr_node_ids"),  # no u32 truncation to node 2
    ("node", "2", "EINVAL", r"start 0x300 > end 0x200"),
    ("start", "0x", "EINVAL", r"memlayout/start: '0x' is not a number"),
    ("end", "-1", "EINVAL", "memlayout/end"),
    ("node", "two", "EINVAL", "memlayout/node"),
    ("start", "0x10000000000000000", "ERANGE", "64 bits"),
    ("commit", "yes", "EINVAL", "memlayout/commit"),
    ("clear", "", "EINVAL", "memlayout/clear"),
    ("nodes", "1", "ENOENT", r"memlayout/nodes: no such file"),
    ("moved-pages", "0", "EACCES", "read-only"),
    ("layout.0/0-7FF", "1", "EACCES", "read-only"),
])
def test_bad_writes_change_nothing(name, value, errno, match, small_machine, unchanged):
    d = _loaded(small_machine)
    before = user_state(d)
    with unchanged(d.machine), pytest.raises(DebugfsError, match=match) as ei:
        d.write(name, value)
    assert ei.value.errno == errno and isinstance(ei.value, DnumaError)
    assert user_state(d) == before


@pytest.mark.parametrize(("start", "end"), [
    (0x1FF, 0x1FF),  # last pfn of the pending range
    (0x0, 0x100),  # reaches its first pfn from below
    (0x180, 0x400),  # starts inside
    (0x0, 0xFFF),  # contains it
    (0x150, 0x160),  # inside it
])
def test_overlapping_ranges_are_refused(start, end, small_machine):
    d = _loaded(small_machine)
    d.write("start", hex(start))
    d.write("end", hex(end))
    before = user_state(d)
    with pytest.raises(DebugfsError, match=r"overlaps the pending range 0x100-0x1ff -> node 1"):
        d.write("node", "2")
    assert user_state(d) == before  # start/end kept so the user can fix them


def test_adjacent_ranges_are_not_overlaps(small_machine):
    d = _loaded(small_machine)
    for s, e in ((0xFF, 0xFF), (0x200, 0x2FF), (0, 0xFE)):
        d.write("start", hex(s))
        d.write("end", hex(e))
        d.write("node", "0")
    assert [r[:2] for r in d.pending] == [(0, 0xFE), (0xFF, 0xFF), (0x100, 0x1FF), (0x200, 0x2FF)]


def test_commit_of_an_invalid_layout_changes_nothing_and_keeps_it_pending(small_machine, unchanged):
    m = small_machine()
    d = MemlayoutDebugfs(m)
    d.write("start", "0x800")
    d.write("end", "0x1000")  # one pfn past the end of memory
    d.write("node", "1")
    before = user_state(d)
    with unchanged(m):
        with pytest.raises(LayoutError, match=r"0x800-0x1000: beyond the end of memory"):
            d.write("commit", "1")
        assert user_state(d) == before and d.last_report is None
        # a u64 pfn the model cannot hold is refused the same way
        d.write("clear", "1")
        d.write("start", "0")
        d.write("end", "0xffffffffffffffff")
        d.write("node", "1")
        with pytest.raises(LayoutError, match="beyond the end of memory"):
            d.write("commit", "1")
    # clear, then a good layout commits
    d.write("clear", "1")
    d.write("end", "0xfff")
    d.write("node", "1")
    assert d.write("commit", "1") is not None and m.seq == 1


def test_node_that_is_not_possible_is_refused_at_commit(small_machine, unchanged):
    m = small_machine()
    m.topo.node_states[:, 5] = False  # a hole in the possible map, below nr_node_ids
    d = MemlayoutDebugfs(m)
    d.write("end", "0xfff")
    d.write("node", "5")  # debugfs only checks nid < nr_node_ids
    with unchanged(m), pytest.raises(LayoutError, match="node 5 is not possible"):
        d.write("commit", "1")
    assert m.seq == 0 and d.pending == [(0, 0xFFF, 5)]


def test_vetoed_commit_keeps_the_pending_layout(small_machine, unchanged):
    m = small_machine()
    m.notifier.register(lambda ev: ev.stage != "going", name="firmware")
    d = MemlayoutDebugfs(m)
    d.write("end", "0xfff")
    d.write("node", "2")
    with unchanged(m), pytest.raises(NotifyVeto, match="firmware"):
        d.write("commit", "1")
    assert d.pending == [(0, 0xFFF, 2)]


# ---------------------------------------------------------------- reads
def test_reads_of_the_layout_directories_and_counters(small_machine):
    m = small_machine(backlog=-1)
    d = MemlayoutDebugfs(m)
    assert d.readlink("current") == "layout.0"
    assert d.listdir("current") == ["0-7FF", "800-FFF"]
    assert d.read("current/800-FFF") == "1\n"
    p = m.alloc_pages(0, cpu=0, nid=0)
    assert p is not None
    reports = run_script(m, parse_script(f"echo 0 > {ROOT}/start\necho 0xfff > {ROOT}/end\n"
                                         f"echo 1 > {ROOT}/node\necho 1 > {ROOT}/commit\n"))
    assert d.readlink() == "layout.1"
    assert d.listdir() == ["moved-pages", "pfn-lookup-cache-misses", "pfn-lookup-cache-hits",
                           "start", "end", "node", "commit", "clear", "current",
                           "layout.0", "layout.1"]
    assert d.listdir("layout.1") == [n for n, _ in m.layout.debugfs_names()] == ["0-FFF"]
    assert d.read("layout.1/0-FFF") == "1\n"
    assert d.read("layout.0/00000-007ff") == "0\n"  # the later "%05lx" spelling
    assert d.read(f"{ROOT}/layout.0/0-7FF") == "0\n"
    # ml_stat_count_moved_pages counted the commit's transplants (buddy and
    # pcp drain) and then counts each redirect on free
    [rep] = reports
    at_commit = rep.free_pages_moved + rep.pcp_pages_moved
    assert at_commit > 0 and d.read("moved-pages") == f"{at_commit}\n"
    m.free_pages(p, 0, cpu=0)  # the marked page moves to node 1 on free
    assert d.read("moved-pages") == f"{at_commit + 1}\n" and m.moved_on_free == 1
    hits, misses = int(d.read("pfn-lookup-cache-hits")), int(d.read("pfn-lookup-cache-misses"))
    assert hits + misses >= 1
    assert misses == int(m.S.counters[_st.C_LOOKUP_MISSES])
    assert hits == int(m.S.counters[_st.C_LOOKUP_HITS])


@pytest.mark.parametrize(("path", "errno"), [
    ("current", "EISDIR"), ("layout.0", "EISDIR"), ("", "EISDIR"), ("bogus", "ENOENT"),
    ("layout.7/0-7FF", "ENOENT"), ("current/0-7FE", "ENOENT"), ("current/zz", "ENOENT"),
])
def test_bad_reads(path, errno, small_machine):
    d = MemlayoutDebugfs(small_machine())
    with pytest.raises(DebugfsError) as ei:
        d.read(path)
    assert ei.value.errno == errno


def test_listdir_and_readlink_errors(small_machine):
    d = MemlayoutDebugfs(small_machine())
    with pytest.raises(DebugfsError, match="no such directory"):
        d.listdir("layout.9")
    with pytest.raises(DebugfsError, match="not a symlink"):
        d.readlink("start")


# ---------------------------------------------------------------- scripts
def test_parse_script_forms():
    text = f"""
# comment

start 0x1000
  end   0x1fff   # trailing comment
node 2
commit
clear
echo 0x10 > {ROOT}/start
echo -n "0x20" >>$DBG/memlayout/end
echo '1' >{ROOT}/node
echo 1 > ./commit
{ROOT}/clear 0
"""
    ws = parse_script(text, "s.sh")
    assert [(w.name, w.value, w.line) for w in ws] == [
        ("start", "0x1000", 4), ("end", "0x1fff", 5), ("node", "2", 6), ("commit", "1", 7),
        ("clear", "1", 8), ("start", "0x10", 9), ("end", "0x20", 10), ("node", "1", 11),
        ("commit", "1", 12), ("clear", "0", 13)]
    assert ws[0] == DebugfsWrite("start", "0x1000", "s.sh", 4) and ws[0].where == "s.sh:4"


@pytest.mark.parametrize(("line", "match"), [
    ("begin 0x10", "expected 'FILE \\[VALUE\\]'"),
    ("start", "start: expected a value \\(a pfn\\)"),
    ("node", "node: expected a value \\(a node id\\)"),
    ("start 1 2", "got 'start 1 2'"),
    ("start 0xzz", "start: '0xzz' is not a number"),
    ("echo 1", "echo VALUE >"),
    ("echo 1 2 > start", "echo VALUE >"),
    ("echo 1 | tee start", "echo VALUE >"),
    (f"echo 1 > {ROOT}/moved-pages", "memlayout/moved-pages: not a writable file"),
    (f"echo 1>{ROOT}/commit", "redirects file descriptor"),
    ("echo 'x > start", "No closing quotation"),
    ("cat start", "expected 'FILE"),
])
def test_parse_script_errors_name_the_line(line, match):
    with pytest.raises(DebugfsError, match=match) as ei:
        parse_script(f"# header\n\n{line}\ncommit\n", "bad.sh")
    assert str(ei.value).startswith("bad.sh:3: ")


def test_failing_line_leaves_earlier_commits_in_place(small_machine):
    m = small_machine()
    text = """start 0
end 0x7ff
node 1
commit
start 0x800
end 0xfff
node 64
commit
"""
    d = MemlayoutDebugfs(m)
    with pytest.raises(ScriptError, match=r"^run.sh:7: memlayout/node: node 64 >= nr_node_ids") \
            as ei:
        d.run_script(parse_script(text, "run.sh"))
    err = ei.value
    assert err.write.line == 7 and err.errno == "EINVAL" and isinstance(err.cause, DebugfsError)
    assert [r.seq for r in err.reports] == [1] and m.seq == 1
    assert list(m.layout) == [(0, 0x7FF, 1)]
    assert (d.start, d.end) == (0x800, 0xFFF) and d.pending == []


def test_script_commit_errors_keep_their_cause(small_machine):
    m = small_machine()
    with pytest.raises(ScriptError, match=r"^x:3: range 0x0-0x5000") as ei:
        run_script(m, parse_script("end 0x5000\nnode 0\ncommit\n", "x"))
    assert isinstance(ei.value.cause, LayoutError) and m.seq == 0


def test_two_commits_in_one_script(small_machine):
    m = small_machine()
    reports = run_script(m, parse_script(
        "end 0xfff\nnode 2\ncommit\ncommit\nend 0x7ff\nnode 0\nstart 0x800\nend 0xfff\n"
        "node 1\ncommit\n"))
    assert [r.seq for r in reports] == [1, 2]  # the empty commit in between did nothing
    assert reports[0].nodes_onlined == [2] and reports[1].nodes_offlined == []
    # node 2 lost its memory but stays online (6.12 offline_pages keeps N_ONLINE)
    assert m.topo.node_states[N_ONLINE, 2] and not m.topo.node_states[N_MEMORY, 2]
    assert m.layout == MemLayout.from_ranges([(0, 0x7FF, 0), (0x800, 0xFFF, 1)])
    validate_all(m)
