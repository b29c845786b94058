"""genstatus monitor: config, store, scheduler, scoring and the command line.

Nothing in this package imports Flask: the web UI lives in ``web`` and only the
CLI composes the two.
"""
