"""Kernel text formats in and out: sysfs, procfs and debugfs trees, host import, snapshots."""
