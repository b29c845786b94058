"""YAML to ``Config``: line numbers for every key, ``${VAR}`` substitution, every problem at once.

Every error names the file, the line and the key path, e.g.
``genstatus.yaml:14 services[0].interval: invalid duration '5 minutes'``.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.composer import Composer
from yaml.resolver import Resolver

from monitor.config.schema import DEFAULT_CONFIG_NAME, Config


@dataclass
class ConfigIssue:
    path: tuple[str | int, ...]
    message: str


class ConfigError(Exception):
    """One or more problems in a config file; ``str()`` gives one line per problem."""

    def __init__(self, file: str, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.file = file
        self.lines = lines


def format_path(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


MAX_NODES = 50_000  # a config is a few hundred values; aliases must not multiply them (a "billion laughs" file)
MAX_DEPTH = 32  # the schema nests five levels deep
MAX_CONFIG_BYTES = 16 * 2**20  # read no further: ``-c /dev/zero`` must not fill the memory
TOO_DEEP = f"nested too deeply (more than {MAX_DEPTH} levels)"


class _TooComplex(Exception):
    """The YAML is bigger, deeper or more self-referential than a config can be; ``line`` says where."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _LimitedComposer(Composer):
    """PyYAML's composer, stopping at the ``MAX_NODES``-th node or the ``MAX_DEPTH``-th level.

    The limits hold while the file is read, so a 10 MB config is refused after its first
    megabyte instead of after the whole tree is built (and a deep one without a deep recursion).
    """

    def __init__(self) -> None:
        super().__init__()
        self._composed = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if not (isinstance(parent, yaml.MappingNode) and index is None):  # keys are not counted as values
            self._composed += 1
        self._depth += 1
        try:
            if self._composed > MAX_NODES:
                raise _TooComplex(self._line(), f"more than {MAX_NODES} values: a config is a few hundred")
            if self._depth > MAX_DEPTH + 1:  # the root is level 0
                raise _TooComplex(self._line(), TOO_DEEP)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _line(self) -> int:
        return self.peek_event().start_mark.line + 1  # type: ignore[attr-defined]  # the parser mixed in


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _Loader(_LimitedComposer, CParser, Resolver):
        """libyaml scans and parses (ten times faster than PyYAML's own), our composer builds the tree."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            _LimitedComposer.__init__(self)
            Resolver.__init__(self)
else:  # pragma: no cover - PyYAML without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Loader(Reader, Scanner, Parser, _LimitedComposer, Resolver):  # type: ignore[no-redef]
        def __init__(self, text: str) -> None:
            Reader.__init__(self, text)
            Scanner.__init__(self)
            Parser.__init__(self)
            _LimitedComposer.__init__(self)
            Resolver.__init__(self)


def _compose(text: str) -> yaml.Node | None:
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


_PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


class _Reader:
    """Builds plain Python data from a composed YAML tree, remembering each path's line.

    Aliases are followed, but an alias inside its own anchor, nesting deeper than ``MAX_DEPTH``
    and more than ``MAX_NODES`` values in all (aliases counted each time) are refused.
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.lines: dict[tuple, int] = {}
        self.issues: list[ConfigIssue] = []
        #: paths whose value stands in for one that could not be read (an unset variable, a bad scalar):
        #: what later checks say about them would be about the stand-in, not the file
        self.replaced: list[tuple] = []
        self._constructor = yaml.SafeLoader("")
        self._visited = 0
        self._open: set[int] = set()  # the nodes being read right now (an alias to one of them is a loop)

    def read(self, node: yaml.Node | None, path: tuple = ()) -> Any:
        if node is None:
            return {}
        line = node.start_mark.line + 1
        self._visited += 1
        if self._visited > MAX_NODES:
            raise _TooComplex(line, f"more than {MAX_NODES} values (aliases that multiply each other?)")
        if len(path) > MAX_DEPTH:
            raise _TooComplex(line, TOO_DEEP)
        if id(node) in self._open:
            raise _TooComplex(line, "an alias refers to the value that contains it")
        self._open.add(id(node))
        try:
            return self._read(node, path, line)
        finally:
            self._open.discard(id(node))

    def _read(self, node: yaml.Node, path: tuple, line: int) -> Any:
        self.lines.setdefault(path, line)
        if isinstance(node, yaml.CollectionNode) and node.tag not in _PLAIN_TAGS:
            # PyYAML's constructor is bypassed for collections: ``!!python/object:...`` or ``!!set`` would be read as plain
            self._problem(path, f"unsupported YAML tag {node.tag!r}")
        if isinstance(node, yaml.MappingNode):
            self._constructor.flatten_mapping(node)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(self._scalar(key_node, path))
                child = path + (key,)
                self.lines[child] = key_node.start_mark.line + 1
                if key in out:
                    self.issues.append(ConfigIssue(child, f"duplicate key {key!r}"))
                out[key] = self.read(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.read(item, path + (i,)) for i, item in enumerate(node.value)]
        if node.tag == "tag:yaml.org,2002:str" and "${" in node.value:
            return self._checked(self._substitute(node.value, path), path)
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: tuple) -> Any:
        """PyYAML's value for a scalar; one it cannot build (``2026-13-45``, ``!!int abc``, an integer
        of 5000 digits) is a problem of the file, where PyYAML raises ``ValueError`` and the like."""
        try:
            value = self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError:
            raise
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError) as exc:
            self._constructor.recursive_objects.pop(node, None)
            kind = node.tag.rsplit(":", 1)[-1]
            reason = f" ({str(exc).split(';')[0]})" if isinstance(exc, (ValueError, OverflowError)) else ""
            self._problem(path, f"{_shown(node.value)} is not a valid {kind}{reason}")
            return None
        return self._checked(value, path)

    def _checked(self, value: Any, path: tuple) -> Any:
        """A scalar's value; NUL (from a ``"\\0"`` escape) and ``!!binary`` are refused: the
        database cannot store NUL, and every config value is text, a number or a flag."""
        if isinstance(value, bytes):
            self._problem(path, "binary values (!!binary) are not config values")
        elif isinstance(value, str) and "\x00" in value:
            self._problem(path, "contains a NUL character (\\0)")
            value = value.replace("\x00", "")
        return value

    def _problem(self, path: tuple, message: str) -> None:
        """A value that could not be read as written: reported here, and left out of later checks."""
        self.issues.append(ConfigIssue(path, message))
        self.replaced.append(path)

    def _substitute(self, text: str, path: tuple) -> str:
        """``${VAR}`` must be set; ``${VAR:-default}`` falls back when VAR is unset or empty (as in the shell)."""

        def replace(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            value = self.env.get(name)
            if default is not None and not value:
                return default
            if value is None:
                self._problem(path, f"environment variable {name} is not set")
                return ""
            return value

        return _VAR.sub(replace, text)


def _shown(value: Any) -> str:
    """``repr`` cut short: the bad value is quoted in the message, and may be thousands of characters."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def _line_at(text: str, position: int) -> int:
    """The line of a reader error's ``position``: a UTF-8 byte offset from libyaml, a character offset otherwise."""
    if yaml.__with_libyaml__:
        return text.encode("utf-8")[:position].count(b"\n") + 1
    return text[:position].count("\n") + 1


def _line_for(lines: dict[tuple, int], path: tuple) -> int:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1


def pydantic_issues(error: ValidationError, data: Any) -> list[ConfigIssue]:
    issues = []
    for item in error.errors():
        path: list[str | int] = []
        cursor = data
        for part in item["loc"]:
            # drop discriminated-union tags and other loc parts that are not in the data
            if isinstance(cursor, dict) and part in cursor:
                cursor = cursor[part]
                path.append(part)
            elif isinstance(cursor, list) and isinstance(part, int) and part < len(cursor):
                cursor = cursor[part]
                path.append(part)
            elif item["type"] == "missing" and part == item["loc"][-1]:
                path.append(part)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = f"unknown key {str(path[-1])!r}" if path else "unknown key"
        elif item["type"] == "missing":
            message = "required key is missing"
        elif item["type"] == "union_tag_invalid":
            message = f"{message}"
        issues.append(ConfigIssue(tuple(path), message))
    return issues


def _written_ids(data: Any, *keys: str) -> set[str]:
    """The ids written in the list under ``keys``, valid or not: a reference to an entry that has a
    problem of its own (and so is missing from the model) is not a second problem."""
    items = data
    for key in keys:
        items = items.get(key) if isinstance(items, dict) else None
    if not isinstance(items, list):
        return set()
    return {item["id"] for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)}


def _cross_check(config: Config, data: Any = None) -> list[ConfigIssue]:
    """Rules that span several keys: ids unique, references defined.

    ``data`` is the file as written; when some entries were refused, ``config`` holds the rest.
    """
    issues: list[ConfigIssue] = []
    canary_ids: set[str] = set()
    for i, canary in enumerate(config.canaries):
        if canary.id in canary_ids:
            issues.append(ConfigIssue(("canaries", i, "id"), f"duplicate canary id {canary.id!r}"))
        canary_ids.add(canary.id)
    canary_ids |= _written_ids(data, "canaries")
    service_ids: set[str] = set()
    for i, service in enumerate(config.services):
        if service.id in service_ids:
            issues.append(ConfigIssue(("services", i, "id"), f"duplicate service id {service.id!r}"))
        service_ids.add(service.id)
        for j, canary_id in enumerate(service.canaries):
            if canary_id not in canary_ids:
                issues.append(ConfigIssue(("services", i, "canaries", j), f"canary {canary_id!r} is not defined under canaries"))
    service_ids |= _written_ids(data, "services")
    for i, window in enumerate(config.maintenance):
        for j, service_id in enumerate(window.services):
            if service_id not in service_ids:
                issues.append(ConfigIssue(("maintenance", i, "services", j), f"service {service_id!r} is not defined"))
    channel_ids: set[str] = set()
    for i, channel in enumerate(config.alerts.channels):
        if channel.id in channel_ids:
            issues.append(ConfigIssue(("alerts", "channels", i, "id"), f"duplicate channel id {channel.id!r}"))
        channel_ids.add(channel.id)
    channel_ids |= _written_ids(data, "alerts", "channels")
    groups = {service.group for service in config.services}
    written_services = data.get("services") if isinstance(data, dict) else None
    if isinstance(written_services, list):
        groups |= {item["group"] for item in written_services if isinstance(item, dict) and isinstance(item.get("group"), str)}
    for i, route in enumerate(config.alerts.routes):
        for j, channel_id in enumerate(route.channels):
            if channel_id not in channel_ids:
                issues.append(ConfigIssue(("alerts", "routes", i, "channels", j), f"channel {channel_id!r} is not defined"))
        for j, service_id in enumerate(route.services or ()):
            if service_id not in service_ids:
                issues.append(ConfigIssue(("alerts", "routes", i, "services", j),
                                          f"service {service_id!r} is not defined: this route would never match it"))
        for j, group in enumerate(route.groups or ()):
            if group not in groups:
                issues.append(ConfigIssue(("alerts", "routes", i, "groups", j),
                                          f"no service is in group {group!r}: this route would never match it"))
    if config.reports.weekly:
        for j, channel_id in enumerate(config.reports.weekly.channels):
            if channel_id not in channel_ids:
                issues.append(ConfigIssue(("reports", "weekly", "channels", j), f"channel {channel_id!r} is not defined"))
    return issues


def _under(path: tuple, prefixes: set[tuple]) -> bool:
    """``path`` is one of ``prefixes`` or inside one (a set: a hostile file may have thousands of each)."""
    return any(path[:end] in prefixes for end in range(len(path) + 1))


REPAIR_ROUNDS = 8  # each round takes out what the last validation refused; a few suffice for any real file


class _Repaired:
    """A copy of the data with what validation refused taken out, so the checks that span keys
    (references, providers) still run on the rest and every independent problem is reported at once.

    A refused value is removed (its default applies); when the key is required, the entry holding
    it goes.  Paths of the copy are translated back to the file's with ``original``.
    """

    def __init__(self, data: Any) -> None:
        self.data = copy.deepcopy(data)
        self._origin: dict[int, list[int]] = {}  # id of a list in the copy -> the file's index of each item left
        self._removed: list[Any] = []  # kept alive, so the ids in ``_origin`` stay unique

    def model(self, model_cls: type[M], errors: list[Any]) -> M | None:
        """The model of what is left, or None when what was refused cannot be taken out (the whole file)."""
        for _ in range(REPAIR_ROUNDS):
            if not self._remove(errors):
                return None
            try:
                return model_cls.model_validate(self.data)
            except ValidationError as exc:
                errors = exc.errors()
        return None

    def _remove(self, errors: list[Any]) -> bool:
        targets: dict[tuple[int, Any], tuple[Any, Any]] = {}
        for error in errors:
            target = self._target(error["loc"])
            if target is None:
                return False
            targets[(id(target[0]), target[1])] = target
        # the highest index first, so the lower ones still point at their items
        for container, key in sorted(targets.values(), key=lambda t: t[1] if isinstance(t[1], int) else -1, reverse=True):
            if isinstance(container, list):
                del self._origin.setdefault(id(container), list(range(len(container))))[key]
            self._removed.append(container[key])
            del container[key]
        return bool(targets)

    def _target(self, loc: tuple) -> tuple[Any, Any] | None:
        """(container, key) of the deepest value of ``loc`` in the data: the refused value itself, or
        for a missing key the entry that lacks it (a union's tag in ``loc`` is not in the data either)."""
        cursor, target = self.data, None
        for part in loc:
            if isinstance(cursor, dict) and part in cursor or \
                    isinstance(cursor, list) and isinstance(part, int) and 0 <= part < len(cursor):
                target, cursor = (cursor, part), cursor[part]
        return target

    def original(self, path: tuple) -> tuple:
        """``path`` in the copy as the file's path (list indices shift when entries are taken out)."""
        out: list[Any] = []
        cursor = self.data
        for part in path:
            if isinstance(cursor, list) and isinstance(part, int):
                index = self._origin.get(id(cursor))
                out.append(index[part] if index is not None and 0 <= part < len(index) else part)
                cursor = cursor[part] if 0 <= part < len(cursor) else None
            else:
                out.append(part)
                cursor = cursor.get(part) if isinstance(cursor, dict) else None
        return tuple(out)


M = TypeVar("M", bound=BaseModel)


def parse_yaml_model(
    text: str,
    file: str,
    model_cls: type[M],
    env: dict[str, str] | None = None,
    check: Callable[[M, Any], list[ConfigIssue]] | None = None,
) -> M:
    """Parse YAML into ``model_cls``; raise ``ConfigError`` naming file, line and key path.

    ``${VAR}`` is replaced from ``env`` (default: the environment); ``check(model, data)`` adds
    the rules that span several keys, reported with the same line numbers (``data`` is the file
    as written: when some entries were refused, ``model`` holds the rest).  Problems are sorted by line.
    """
    env = dict(os.environ) if env is None else env
    reader = _Reader(env)
    try:
        root = _compose(text)
        data = reader.read(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or exc.context or "not YAML"
        if "nesting depth" in problem:  # libyaml's own limit, met while it reads ahead
            problem = TOO_DEEP
        bad_line = text.splitlines()[line - 1:line]
        if bad_line and "\t" in bad_line[0] and "tab" not in problem and "\\t" not in problem:  # libyaml names no character
            problem += " (a tab? YAML indents with spaces)"
        raise ConfigError(file, [f"{file}:{line} {problem}"]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line = _line_at(text, exc.position)
        raise ConfigError(file, [f"{file}:{line} {str(exc).splitlines()[0]}"]) from None
    except UnicodeEncodeError as exc:  # a lone surrogate in text given by a caller (libyaml reads UTF-8)
        line = text[:exc.start].count("\n") + 1
        raise ConfigError(file, [f"{file}:{line} not valid Unicode text"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, [f"{file}:1 {exc}"]) from None
    except _TooComplex as exc:
        raise ConfigError(file, [f"{file}:{exc.line} {exc.message}"]) from None
    except RecursionError:
        raise ConfigError(file, [f"{file}:1 {TOO_DEEP}"]) from None
    if not isinstance(data, dict):
        keys = ", ".join(model_cls.model_fields)
        raise ConfigError(file, [f"{file}:1 (top level): expected a mapping of keys ({keys})"])
    issues, model = _validated(model_cls, data, reader, check)
    if issues:
        numbered = sorted(((_line_for(reader.lines, i.path), i) for i in issues), key=lambda pair: pair[0])
        raise ConfigError(file, [f"{file}:{line} {format_path(i.path)}: {i.message}" for line, i in numbered])
    assert model is not None
    return model


def _validated(
    model_cls: type[M], data: dict, reader: _Reader, check: Callable[[M, Any], list[ConfigIssue]] | None
) -> tuple[list[ConfigIssue], M | None]:
    """Every independent problem of ``data``, and the model when there is none.

    The stages (reading, the schema, ``check``) each run whatever the one before found: a problem
    only hides what depends on it, i.e. what a later stage says at or under a path already reported.
    """
    issues = list(reader.issues)
    model: M | None = None
    checked: M | None = None
    replaced = set(reader.replaced)
    reported = set(replaced)
    try:
        model = checked = model_cls.model_validate(data)
        repaired = None
    except ValidationError as exc:
        schema_issues = [i for i in pydantic_issues(exc, data) if not _under(i.path, replaced)]
        issues += schema_issues
        reported |= {i.path for i in schema_issues}
        repaired = _Repaired(data) if check is not None else None
        checked = repaired.model(model_cls, exc.errors()) if repaired else None
    if checked is not None and check is not None:
        for issue in check(checked, data):
            path = repaired.original(issue.path) if repaired else issue.path
            if not _under(path, reported):
                issues.append(ConfigIssue(path, issue.message))
    return issues, (model if not issues else None)


#: a check that spans layers above the config (e.g. provider options): config -> problems
ConfigCheck = Callable[[Config], list[ConfigIssue]]


def parse_config(
    text: str, file: str = DEFAULT_CONFIG_NAME, env: dict[str, str] | None = None, checks: Iterable[ConfigCheck] = ()
) -> Config:
    """Parse and validate config text; raise ``ConfigError`` naming file, line and key path.

    ``checks`` add rules owned by other layers (``probes.registry.provider_issues``), reported
    with the same line numbers.
    """
    env = dict(os.environ) if env is None else env
    extra = list(checks)

    def check(config: Config, data: Any) -> list[ConfigIssue]:
        return _cross_check(config, data) + [issue for extra_check in extra for issue in extra_check(config)]

    config = parse_yaml_model(text, file, Config, env, check=check)
    if env.get("GENSTATUS_DATABASE_URL"):
        config.database = env["GENSTATUS_DATABASE_URL"]
    return config


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    """``-c PATH``, else ``$GENSTATUS_CONFIG``, else ``./genstatus.yaml``."""
    return Path(explicit or os.environ.get("GENSTATUS_CONFIG") or DEFAULT_CONFIG_NAME)


def load_config(
    path: str | os.PathLike | None = None, env: dict[str, str] | None = None, checks: Iterable[ConfigCheck] = ()
) -> Config:
    resolved = config_path(path)
    try:
        with resolved.open("rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(str(resolved), [f"{resolved}: no such config file (create one with 'genstatus init')"]) from None
    except OSError as exc:
        raise ConfigError(str(resolved), [f"{resolved}: cannot read config: {exc.strerror or exc}"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(str(resolved), [f"{resolved}:1 over {MAX_CONFIG_BYTES // 2**20} MB, too large to be a config"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(str(resolved), [f"{resolved}:{line} not UTF-8 text (byte {column} of the line)"]) from None
    return parse_config(text, str(resolved), env, checks)
