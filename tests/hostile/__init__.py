"""Hostile inputs for the commands that read files: configs (``check-config``), traces (``replay``)
and images (``score``).

Every corpus entry runs the real command line -- in-process through ``monitor.cli.main`` where that
is safe, in a subprocess where memory or a hang is what is being tested -- and checks the exit code,
an error naming the file and the line, the absence of a traceback, and a time bound measured
against a baseline taken in the same run (never a fixed wall-clock budget: the machine may be busy).
"""
