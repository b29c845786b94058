"""Run every ``benchmarks/bench_*.py`` and print one table of figures."""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sys
import time
from typing import Any

import benchmarks


def discover() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))


def run_module(name: str, quick: bool) -> list[dict[str, Any]]:
    module = importlib.import_module(f"benchmarks.{name}")
    if "quick" in inspect.signature(module.run).parameters:
        return module.run(quick=quick)
    return module.run()


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def print_table(rows: list[dict[str, Any]]) -> None:
    header = ("benchmark", "figure", "value", "unit", "note")
    cells = [(r["bench"], r["name"], format_value(r["value"]), r.get("unit", ""), r.get("note", "")) for r in rows]
    widths = [max(len(str(c[i])) for c in [header, *cells]) for i in range(len(header))]
    for i, line in enumerate([header, *cells]):
        print("  ".join(str(c).rjust(w) if j == 2 and i else str(c).ljust(w) for j, (c, w) in enumerate(zip(line, widths))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", metavar="NAME", action="append",
                        help="run only benchmarks whose name contains NAME (repeatable)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    names = discover()
    if args.list:
        print("\n".join(n.removeprefix("bench_") for n in names))
        return 0
    if args.only:
        names = [n for n in names if any(o in n for o in args.only)]
        if not names:
            parser.error(f"no benchmark matches {args.only}; available: {', '.join(discover())}")

    rows: list[dict[str, Any]] = []
    for name in names:
        began = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        for figure in run_module(name, args.quick):
            rows.append({"bench": name.removeprefix("bench_"), **figure})
        print(f"  {name} took {time.perf_counter() - began:.1f}s", file=sys.stderr, flush=True)
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
