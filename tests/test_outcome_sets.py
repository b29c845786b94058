"""One meaning per outcome: the named sets, ranks and maintenance rule live in ``monitor/enums.py`` only.

The source scan fails when any other module spells out its own group of outcomes (two or more
``Outcome.X`` in one literal), its own order of impacts or statuses, or compares uptime effects.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from monitor.enums import (
    DEGRADED_OUTCOMES,
    DOWN_OUTCOMES,
    HEALTHY_OUTCOMES,
    IMAGE_OUTCOMES,
    IMPACT_RANK,
    OPERATOR_OUTCOMES,
    STATUS_RANK,
    ComponentStatus,
    Impact,
    Outcome,
    UptimeEffect,
    in_maintenance,
    worst_impact,
    worst_status,
)

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / "monitor" / "enums.py"
SCANNED = ("monitor", "probes", "web")
#: an adapter may name the outcomes its own provider's answer can mean (a classification, not a
#: meaning of outcomes); emulators map each fault to the outcome it must produce
PROVIDER_SPECIFIC = ("probes/providers/", "probes/emulator/")
RANKED = {"Impact": 3, "ComponentStatus": 3}


def _members(node: ast.AST, enum: str) -> int:
    elements: list = []
    if isinstance(node, (ast.Set, ast.Tuple, ast.List)):
        elements = node.elts
    elif isinstance(node, ast.Dict) and all(isinstance(v, ast.Constant) and isinstance(v.value, int) for v in node.values):
        elements = list(node.keys)  # {Impact.NONE: 0, Impact.MINOR: 1, ...}: a rank of its own
    return sum(1 for e in elements if isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name) and e.value.id == enum)


def own_definitions(source: str, name: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if _members(node, "Outcome") >= 2:
            found.append(f"{name}:{node.lineno}: a group of outcomes (use the sets in monitor.enums)")
        for enum, least in RANKED.items():
            if _members(node, enum) >= least:
                found.append(f"{name}:{node.lineno}: an order of {enum} values (use the ranks in monitor.enums)")
        if isinstance(node, ast.Compare) and any(
            isinstance(c, ast.Attribute) and isinstance(c.value, ast.Name) and c.value.id == "UptimeEffect"
            for c in node.comparators):
            found.append(f"{name}:{node.lineno}: an uptime-effect test (use the sets in monitor.enums)")
    return found


def test_no_module_defines_its_own_outcome_sets_or_ranks():
    found = []
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            if path != HOME and not name.startswith(PROVIDER_SPECIFIC):
                found += own_definitions(path.read_text(encoding="utf-8"), name)
    assert found == []


def test_the_scan_catches_a_private_definition():
    assert own_definitions("BAD = {Outcome.SERVER_ERROR, Outcome.RATE_LIMITED}\n", "x.py")
    assert own_definitions("ok = outcome in (Outcome.OK, Outcome.SLOW)\n", "x.py")
    assert own_definitions("ORDER = [Impact.NONE, Impact.MINOR, Impact.MAJOR]\n", "x.py")
    assert own_definitions("RANK = {Impact.NONE: 0, Impact.MINOR: 1, Impact.MAJOR: 2}\n", "x.py")
    assert own_definitions("down = [o for o in Outcome if o.uptime_effect is UptimeEffect.DOWN]\n", "x.py")
    assert own_definitions("x = outcome is Outcome.OK\n", "x.py") == []


def test_sets_follow_the_taxonomy():
    assert DOWN_OUTCOMES == {Outcome.BAD_OUTPUT, Outcome.SERVER_ERROR, Outcome.TIMEOUT, Outcome.CONNECTION_ERROR,
                             Outcome.CLIENT_ERROR}
    assert DEGRADED_OUTCOMES == {Outcome.SLOW, Outcome.DEGRADED_QUALITY, Outcome.CONTENT_FILTERED, Outcome.RATE_LIMITED}
    assert OPERATOR_OUTCOMES == {Outcome.AUTH_ERROR, Outcome.PROBE_ERROR}
    assert Outcome.RATE_LIMITED not in DOWN_OUTCOMES  # degraded, never downtime (see monitor/enums.py)
    every = DOWN_OUTCOMES | DEGRADED_OUTCOMES | OPERATOR_OUTCOMES | {Outcome.OK}
    assert every == set(Outcome) and len(DOWN_OUTCOMES) + len(DEGRADED_OUTCOMES) + len(OPERATOR_OUTCOMES) + 1 == len(Outcome)
    assert HEALTHY_OUTCOMES < IMAGE_OUTCOMES and not IMAGE_OUTCOMES & DOWN_OUTCOMES
    assert all(o.uptime_effect is UptimeEffect.DOWN for o in DOWN_OUTCOMES)


def test_ranks_order_severity():
    assert sorted(Impact, key=IMPACT_RANK.__getitem__) == [Impact.NONE, Impact.MINOR, Impact.MAJOR, Impact.CRITICAL]
    assert worst_impact([Impact.MINOR, Impact.CRITICAL, Impact.MAJOR]) is Impact.CRITICAL
    assert worst_impact([]) is Impact.NONE
    assert worst_status([ComponentStatus.PARTIAL_OUTAGE, ComponentStatus.DEGRADED_PERFORMANCE]) is ComponentStatus.PARTIAL_OUTAGE
    assert STATUS_RANK[ComponentStatus.MAJOR_OUTAGE] > STATUS_RANK[ComponentStatus.OPERATIONAL]


NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("services, start, end, expected", [
    ((), NOW - timedelta(minutes=1), NOW + timedelta(minutes=1), True),       # empty list: every service
    (("svc",), NOW, NOW + timedelta(minutes=1), True),                      # start is inclusive
    (("svc",), NOW - timedelta(minutes=1), NOW, False),                     # end is exclusive
    (("other",), NOW - timedelta(minutes=1), NOW + timedelta(minutes=1), False),
])
def test_one_maintenance_rule(services, start, end, expected):
    window = SimpleNamespace(services=services, start=start, end=end)
    assert in_maintenance([window], "svc", NOW) is expected
