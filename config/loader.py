"""Load a SystemConfig from TOML, apply environment overrides, check references.

Every error is a ConfigError whose message names the file and the field path,
e.g. `config/default.toml: nodes[1].cores[0]: core 7 does not exist`.

Environment overrides (for secrets and one-off changes) use double underscores
between path parts, with list entries addressed by their `name`:
`GRANDMODEL__logging__level=debug`, `GRANDMODEL__actors__feed__params__seed=11`.
The value is read as a TOML value when it parses as one, else as a string.
"""

import importlib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from config.instruments import check_registry
from config.schema import SystemConfig

DEFAULT_CONFIG = Path(__file__).resolve().parent / "default.toml"
ENV_PREFIX = "GRANDMODEL__"


class ConfigError(Exception):
    """An invalid configuration; the message names the file and the field."""


def load_config(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cpus: int | None = None,
) -> SystemConfig:
    """Load and validate; `cpus` checks core numbers against another machine's size."""
    source = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        with open(source, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such config file") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None
    try:
        _apply_env(data, os.environ if environ is None else environ)
        config = msgspec.convert(data, SystemConfig)
        validate(config, cpus)
    except msgspec.ValidationError as error:
        raise ConfigError(f"{source}: {field_path(str(error))}") from None
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    return config


def field_path(message: str, prefix: str = "") -> str:
    """msgspec says 'reason - at `$.a[0].b`'; we say 'prefix.a[0].b: reason'."""
    match = re.match(r"^(?P<reason>.*) - at `\$\.?(?P<path>[^`]*)`$", message)
    path, reason = (match["path"], match["reason"]) if match else ("", message)
    joined = ".".join(part for part in (prefix, path) if part) or "<top>"
    return f"{joined.replace('.[', '[')}: {reason}"


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for key, raw in sorted(environ.items()):
        if key.startswith(ENV_PREFIX):
            _apply_override(data, key, key[len(ENV_PREFIX) :].split("__"), _parse_value(raw))


def _apply_override(data: dict[str, Any], key: str, parts: list[str], value: Any) -> None:
    """Set `value` at `parts` in the raw TOML tree; a list of tables is addressed by the
    `name` of its entry. Any path that does not lead to a table is a ConfigError."""
    if not all(parts):
        raise ConfigError(f"{key}: empty path part (use single names between '__')")
    node: dict[str, Any] = data
    where = ""
    i = 0
    while i < len(parts) - 1:
        part = parts[i]
        where = f"{where}.{part}" if where else part
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif isinstance(child, list):
            entry = _named_entry(key, where, child, parts[i + 1])
            if i + 1 == len(parts) - 1:
                raise ConfigError(
                    f"{key}: {where}[{parts[i + 1]!r}] is a whole entry; override one of "
                    "its fields instead"
                )
            child, where, i = entry, f"{where}[{parts[i + 1]!r}]", i + 1
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: {where} is a {type(child).__name__}, not a table")
        node = child
        i += 1
    node[parts[-1]] = value


def _named_entry(key: str, where: str, entries: list[Any], name: str) -> dict[str, Any]:
    named = [item for item in entries if isinstance(item, dict) and item.get("name") == name]
    if not named:
        raise ConfigError(f"{key}: no {where} entry named {name!r}")
    return named[0]


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def import_object(path: str, field: str) -> Any:
    """Import 'package.module:Name'; errors name the config field."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{field}: {path!r} is not of the form 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"{field}: cannot import {module_name!r}: {error}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{field}: {module_name!r} has no {attr!r}") from None


def _unique(items: list[Any], section: str) -> dict[str, int]:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.name in seen:
            raise ConfigError(f"{section}[{i}].name: {item.name!r} is already used")
        seen[item.name] = i
    return seen


def validate(config: SystemConfig, cpus: int | None = None) -> None:
    """Check what the types cannot: references, the tree, cores, streams.

    The actor classes (their ports, message types and params) are checked by
    `kernel.wiring.check_wiring`, which knows what an actor is.
    """
    registry_error = check_registry(config.instruments)
    if registry_error is not None:
        raise ConfigError(registry_error)
    streams = _unique(config.streams, "streams")
    actors = _unique(config.actors, "actors")
    nodes = _unique(config.nodes, "nodes")
    supervisors = _unique(config.supervisors, "supervisors")
    for name in nodes.keys() & supervisors.keys():
        raise ConfigError(f"supervisors[{supervisors[name]}].name: {name!r} is also a node")

    producers: dict[str, str] = {}
    for i, actor in enumerate(config.actors):
        for j, stream_name in enumerate(actor.inputs):
            if stream_name not in streams:
                raise ConfigError(f"actors[{i}].inputs[{j}]: no stream {stream_name!r}")
            if actor.inputs.index(stream_name) != j:
                raise ConfigError(f"actors[{i}].inputs[{j}]: {stream_name!r} is listed twice")
        for port, stream_name in actor.outputs.items():
            if stream_name not in streams:
                raise ConfigError(f"actors[{i}].outputs.{port}: no stream {stream_name!r}")
            if stream_name in producers:
                raise ConfigError(
                    f"actors[{i}].outputs.{port}: stream {stream_name!r} already has producer "
                    f"{producers[stream_name]!r} (one producer per stream)"
                )
            producers[stream_name] = actor.name
    for i, stream in enumerate(config.streams):
        if stream.name not in producers:
            raise ConfigError(f"streams[{i}]: no actor's output is wired to {stream.name!r}")

    cpus = cpus or os.cpu_count() or 1
    hosted: dict[str, str] = {}
    for i, node in enumerate(config.nodes):
        if not node.actors:
            raise ConfigError(f"nodes[{i}].actors: a node hosts at least one actor")
        for j, actor_name in enumerate(node.actors):
            if actor_name not in actors:
                raise ConfigError(f"nodes[{i}].actors[{j}]: no actor {actor_name!r}")
            if actor_name in hosted:
                raise ConfigError(
                    f"nodes[{i}].actors[{j}]: {actor_name!r} already runs in node "
                    f"{hosted[actor_name]!r}"
                )
            hosted[actor_name] = node.name
        for j, core in enumerate(node.cores):
            if core >= cpus:
                raise ConfigError(
                    f"nodes[{i}].cores[{j}]: core {core} does not exist "
                    f"(this machine has cores 0-{cpus - 1})"
                )
    for i, actor in enumerate(config.actors):
        if actor.name not in hosted:
            raise ConfigError(f"actors[{i}]: {actor.name!r} is not hosted by any node")

    if config.root not in supervisors:
        raise ConfigError(f"root: no supervisor named {config.root!r}")
    parent: dict[str, str] = {}
    for i, sup in enumerate(config.supervisors):
        if not sup.children:
            raise ConfigError(f"supervisors[{i}].children: a supervisor needs children")
        for j, child in enumerate(sup.children):
            if child not in nodes and child not in supervisors:
                raise ConfigError(
                    f"supervisors[{i}].children[{j}]: no node or supervisor {child!r}"
                )
            if child in parent:
                raise ConfigError(
                    f"supervisors[{i}].children[{j}]: {child!r} is already supervised by "
                    f"{parent[child]!r}"
                )
            if child == config.root:
                raise ConfigError(f"supervisors[{i}].children[{j}]: the root has no parent")
            parent[child] = sup.name
    for name in list(nodes) + list(supervisors):
        if name != config.root and name not in parent:
            kind = "nodes" if name in nodes else "supervisors"
            index = nodes.get(name, supervisors.get(name))
            raise ConfigError(f"{kind}[{index}]: {name!r} is not under any supervisor")
        seen = {name}
        cursor = name
        while cursor in parent:
            cursor = parent[cursor]
            if cursor in seen:
                raise ConfigError(f"supervisors: {name!r} is in a supervision cycle")
            seen.add(cursor)
