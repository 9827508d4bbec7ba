"""auto_online_blocks: its file, its writes, and the import of a host's."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnuma import boot
from dnuma.io.export import write_sysroot
from dnuma.io.host import HostImportError, boot_from_host
from dnuma.mm.errors import HotplugError
from dnuma.mm.machine import Machine, MachineConfig
from dnuma.mm.memory_block import valid_zones, write_auto_online_blocks
from dnuma.mm.memory_hotplug import memory_block_state

AUTO = "sys/devices/system/memory/auto_online_blocks"


def test_auto_online_blocks_is_written_exported_and_used(tmp_path):
    blk = 32768
    m = Machine(MachineConfig.uniform(2, "512M", 4, maxmem_pfn=8 * blk, max_numnodes=4))
    assert (write_sysroot(m, tmp_path / "a") / AUTO).read_text() == "online\n"
    write_auto_online_blocks(m, "online_movable\n")  # sysfs_streq: one newline
    assert (write_sysroot(m, tmp_path / "b") / AUTO).read_text() == "online_movable\n"
    (b,) = m.add_memory(2, 4 * blk, blk)
    assert memory_block_state(m, b) == "online" and valid_zones(m, b) == "Movable"
    write_auto_online_blocks(m, "offline")
    (b,) = m.add_memory(2, 5 * blk, blk)
    assert memory_block_state(m, b) == "offline"


@pytest.mark.parametrize("text", ["movable", "online ", "", "online\n\n"])
def test_a_bad_auto_online_blocks_write_is_einval_and_changes_nothing(text):
    m = boot(nodes=1, cpus=2, mem="256M")
    with pytest.raises(HotplugError, match="auto_online_blocks") as ei:
        write_auto_online_blocks(m, text)
    assert ei.value.errname == "EINVAL" and m.hotplug.auto_online_blocks == "online"


def test_the_import_takes_the_hosts_auto_online_blocks(tmp_path):
    from dnuma.oracle.record import open_recording

    snaps, _ = open_recording(Path(__file__).parent / "data/oracle/rfc.tar.xz", tmp_path)
    root = snaps / "00-boot"
    assert boot_from_host(root).machine.hotplug.auto_online_blocks == "online"
    (root / AUTO).write_text("online_kernel\n")
    assert boot_from_host(root).machine.hotplug.auto_online_blocks == "online_kernel"
    (root / AUTO).write_text("sideways\n")
    with pytest.raises(HostImportError, match="auto_online_blocks: expected one of"):
        boot_from_host(root)
