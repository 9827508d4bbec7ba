"""The kernel model: no I/O.  Topology, memmap, zones, the page allocator,
memlayout and the DNUMA commit."""
