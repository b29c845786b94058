"""Architecture rules: monitor never imports Flask; web never runs probes."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import monitor


def _modules(package) -> list[str]:
    return [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]


def test_monitor_never_imports_flask():
    names = _modules(monitor)
    code = "import sys\n" + "".join(f"import {n}\n" for n in names) + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'web')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"monitor pulled in {out}"


def test_web_never_imports_probe_machinery():
    code = ("import sys, web, web.status, web.queries, web.server\n"
            "print(sorted(m for m in sys.modules if m.startswith(('probes', 'monitor.runner', 'monitor.scheduler', 'apscheduler'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"web pulled in {out}"
