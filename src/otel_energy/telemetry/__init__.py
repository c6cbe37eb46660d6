"""What leaves the process: OTel instruments, spans with energy, attribute keys, ids, exporters.

Reads the engine (snapshots, windows); never does hardware or network I/O itself.
"""
