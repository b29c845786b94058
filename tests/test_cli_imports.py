"""What ``genstatus`` imports at start-up: a command pays only for what it uses (monitor/cli/__init__.py).

Each case runs the command in a fresh interpreter and lists the heavy modules it loaded; the lists
below are the ones a command must not load (scipy alone took ~0.5 s of a one-shot ``score``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: never needed to print help, validate a config or score a file
HEAVY = ("scipy", "matplotlib", "flask", "werkzeug", "jinja2", "alembic", "mako", "torch", "open_clip", "apprise",
         "apscheduler", "waitress", "sqlalchemy.orm", "pytesseract", "cv2")
#: ``--help`` builds the parser only: no config schema, database, HTTP or image library either
NOT_FOR_HELP = (*HEAVY, "pydantic", "sqlalchemy", "numpy", "PIL", "imagehash", "pywt", "httpx", "yaml")

CONFIG = """\
canaries:
  - {id: c, prompt: a red apple}
services:
  - {id: svc, provider: openai, canaries: [c]}
"""

PROBE = """\
import json, sys
from monitor.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def loaded(tmp_path: Path, *argv: str) -> tuple[int, set[str]]:
    run = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    last = run.stderr.strip().splitlines()[-1]
    data = json.loads(last)
    return data["code"], set(data["modules"])


def forbidden_in(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names if name in modules)


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "genstatus.yaml").write_text(CONFIG)
    return tmp_path


@pytest.mark.parametrize("argv", [["--help"], ["score", "--help"], ["probe", "--help"], ["user", "--help"]])
def test_help_imports_nothing_heavy(workdir, argv):
    code, modules = loaded(workdir, *argv)
    assert code == 0
    assert forbidden_in(modules, NOT_FOR_HELP) == []


def test_check_config_imports_nothing_heavy(workdir):
    code, modules = loaded(workdir, "check-config")
    assert code == 0
    assert "pydantic" in modules  # it did validate
    assert forbidden_in(modules, (*HEAVY, "sqlalchemy", "numpy", "PIL")) == []  # validating needs no ORM, no pixels


def test_score_imports_no_scipy_nor_database(workdir):
    from PIL import Image

    from probes.emulator.images import render_image

    render_image("apple", 1, "m", 128, 128).save(workdir / "a.png")
    code, modules = loaded(workdir, "score", "a.png", "--reference", "a.png")
    assert code == 0
    assert forbidden_in(modules, (*HEAVY, "sqlalchemy")) == []
    assert isinstance(Image.open(workdir / "a.png").size, tuple)


def test_a_config_error_still_exits_2_with_lazy_dispatch(workdir):
    (workdir / "genstatus.yaml").write_text("services: 3\n")
    run = subprocess.run([sys.executable, "-m", "monitor.cli", "check-config"], cwd=workdir, capture_output=True,
                         text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert run.returncode == 2 and "genstatus.yaml:1" in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_the_help_default_config_name_is_the_configs():
    from monitor.cli.common import DEFAULT_CONFIG_NAME
    from monitor.config import DEFAULT_CONFIG_NAME as CONFIG_DEFAULT

    assert DEFAULT_CONFIG_NAME == CONFIG_DEFAULT
