"""Load, merge, validate and render the agent configuration declared in :mod:`vigil.agent.config`.

Layers, later wins: defaults < TOML file < environment (``VIGIL_AGENT_<SECTION>__<KEY>``, e.g.
``VIGIL_AGENT_SPOOL__MAX_MB=512`` or ``VIGIL_AGENT_LOG_ALL=true``) < command line (``section.key=value``).
Each value is checked where it comes from, so an error names the key, the value and its origin.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from vigil.agent.config import ACTION_NAMES, AgentConfig, ConfigError

__all__ = [
    "ENV_PREFIX",
    "FieldSpec",
    "describe",
    "fields",
    "load_config",
    "parse_duration",
    "sections",
    "specs_of",
]

ENV_PREFIX = "VIGIL_AGENT_"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One config key: dotted name, Python type, default, help text, check and kind."""

    key: str
    type: Any
    default: Any
    help: str
    check: Any
    kind: str
    section: type | None  # the dataclass the field belongs to (None: top level)

    @property
    def item_type(self) -> Any:
        """Element type of a tuple field, else None."""
        if typing.get_origin(self.type) is tuple:
            return typing.get_args(self.type)[0]
        return None


def specs_of(cls: type, prefix: str) -> list[FieldSpec]:
    hints = typing.get_type_hints(cls)
    out: list[FieldSpec] = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if meta.get("kind") == "section":
            out.extend(specs_of(hints[f.name], f"{prefix}{f.name}."))
            continue
        default = f.default
        out.append(
            FieldSpec(
                key=prefix + f.name,
                type=hints[f.name],
                default=default,
                help=meta["help"],
                check=meta["check"],
                kind=meta["kind"],
                section=cls if prefix else None,
            )
        )
    return out


def fields() -> list[FieldSpec]:
    """Every config key in declaration order."""
    return specs_of(AgentConfig, "")


def sections() -> list[tuple[str, type, str]]:
    """(name, dataclass, help) of each section."""
    hints = typing.get_type_hints(AgentConfig)
    return [
        (f.name, hints[f.name], f.metadata["help"])
        for f in dataclasses.fields(AgentConfig)
        if f.metadata.get("kind") == "section"
    ]


# -- value coercion -----------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """``"90"``, ``"30s"``, ``"5m"``, ``"1h30m"``, ``"500ms"`` -> seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(text)
    return total


def describe(spec: FieldSpec) -> str:
    if spec.kind == "duration":
        return "a duration (seconds, or like 30s, 5m, 5h)"
    if spec.kind == "path":
        return "a path"
    item = spec.item_type
    if item is not None:
        return "a list of tables" if dataclasses.is_dataclass(item) else "a list of strings"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}[spec.type]


def _coerce(spec: FieldSpec, value: Any, *, from_text: bool) -> Any:
    """Turn ``value`` into the field's type, or raise ValueError (caller adds key and origin)."""
    t = spec.type
    if from_text and isinstance(value, str):
        value = _from_text(spec, value)
    if spec.kind == "duration":
        if isinstance(value, str):
            return parse_duration(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError
    item = spec.item_type
    if item is not None:
        if not isinstance(value, (list, tuple)):
            raise ValueError
        if dataclasses.is_dataclass(item):
            return tuple(_build_table(spec, item, v, i) for i, v in enumerate(value))
        if not all(isinstance(v, str) for v in value):
            raise ValueError
        return tuple(value)
    if t is bool:
        if isinstance(value, bool):
            return value
        raise ValueError
    if t is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError
    if t is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError
    if t is str and isinstance(value, str):
        return value
    raise ValueError


def _from_text(spec: FieldSpec, text: str) -> Any:
    """Parse a string from the environment or the command line by the field's type."""
    t = spec.type
    if spec.kind == "duration" or t is str:
        return text
    if t is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        return text
    if t is int:
        try:
            return int(text.strip())
        except ValueError:
            return text
    if t is float:
        try:
            return float(text.strip())
        except ValueError:
            return text
    if spec.item_type is not None:
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                return tomllib.loads(f"v = {stripped}")["v"]
            except tomllib.TOMLDecodeError:
                return text
        return [part.strip() for part in stripped.split(",") if part.strip()]
    return text


def _build_table(spec: FieldSpec, cls: Any, value: Any, index: int) -> Any:
    key = f"{spec.key}[{index}]"
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"expected a table, got {value!r}", value=value)
    sub = {s.key.rsplit(".", 1)[-1]: s for s in specs_of(cls, "")}
    kwargs: dict[str, Any] = {}
    for name, raw in value.items():
        s = sub.get(name)
        if s is None:
            raise ConfigError(f"{key}.{name}", f"unknown key{_hint(name, sub)}", value=raw)
        try:
            kwargs[name] = _coerce(s, raw, from_text=False)
        except ValueError:
            raise ConfigError(f"{key}.{name}", f"expected {describe(s)}, got {raw!r}", value=raw) from None
    return cls(**kwargs)


def _hint(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- layers -------------------------------------------------------------------------------------------

Layer = tuple[str, dict[str, Any], bool]  # (origin, {dotted key: raw value}, values are text)


def _flatten_toml(data: Mapping[str, Any], specs: Mapping[str, FieldSpec], origin: str) -> dict[str, Any]:
    section_names = {name for name, _, _ in sections()}
    flat: dict[str, Any] = {}
    for name, value in data.items():
        if name in section_names:
            if not isinstance(value, Mapping):
                raise ConfigError(
                    name, f"expected a table [{name}], got {value!r}", value=value, origin=origin
                )
            for sub, v in value.items():
                key = f"{name}.{sub}"
                if key not in specs:
                    choices = [k.split(".", 1)[1] for k in specs if k.startswith(name + ".")]
                    raise ConfigError(key, f"unknown key{_hint(sub, choices)}", value=v, origin=origin)
                flat[key] = v
        elif name in specs:
            flat[name] = value
        else:
            raise ConfigError(
                name,
                f"unknown key{_hint(name, list(specs) + list(section_names))}",
                value=value,
                origin=origin,
            )
    return flat


def _env_layer(env: Mapping[str, str], specs: Mapping[str, FieldSpec]) -> list[Layer]:
    layers: list[Layer] = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        if key not in specs:
            raise ConfigError(
                key, f"unknown key{_hint(key, specs)}", value=env[name], origin=f"environment {name}"
            )
        layers.append((f"environment {name}", {key: env[name]}, True))
    return layers


def _cli_layer(overrides: Iterable[str], specs: Mapping[str, FieldSpec]) -> list[Layer]:
    layers: list[Layer] = []
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ConfigError(key, f"expected key=value, got {item!r}", value=item, origin="command line")
        if key not in specs:
            raise ConfigError(key, f"unknown key{_hint(key, specs)}", value=value, origin="command line")
        layers.append(("command line", {key: value}, True))
    return layers


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Iterable[str] = (),
    known_actions: Iterable[str] = ACTION_NAMES,
) -> AgentConfig:
    """Merge defaults < ``path`` (TOML) < ``env`` < ``overrides`` and validate; raise ConfigError.

    Relative paths in the file are relative to the file's directory; on the command line and in
    the environment, to the current directory. The result has every path resolved.
    """
    specs = {s.key: s for s in fields()}
    layers: list[Layer] = []
    if path is not None:
        origin = os.fspath(path)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ConfigError(
                "(file)", f"cannot read config file: {e.strerror}", value=origin, origin=origin
            ) from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError("(file)", f"invalid TOML: {e}", value=origin, origin=origin) from None
        layers.append((origin, _flatten_toml(data, specs, origin), False))
    layers.extend(_env_layer(os.environ if env is None else env, specs))
    layers.extend(_cli_layer(overrides, specs))

    known = set(known_actions)
    values: dict[str, Any] = {}
    for origin, flat, is_text in layers:
        base_dir = os.path.dirname(os.path.abspath(origin)) if not is_text else os.getcwd()
        for key, raw in flat.items():
            spec = specs[key]
            try:
                value = _coerce(spec, raw, from_text=is_text)
            except ConfigError as e:
                raise ConfigError(e.key, e.reason, value=e.value, origin=origin) from None
            except ValueError:
                raise ConfigError(
                    key, f"expected {describe(spec)}, got {raw!r}", value=raw, origin=origin
                ) from None
            _check(spec, value, known, origin)
            if spec.kind == "path" and value and not os.path.isabs(value):
                value = os.path.normpath(os.path.join(base_dir, value))
            values[key] = value
    config = _assemble(values)
    _check_cross(config)
    return config.resolved()


def _check(spec: FieldSpec, value: Any, known_actions: set[str], origin: str) -> None:
    if spec.check is not None:
        problem = spec.check(value)
        if problem:
            raise ConfigError(spec.key, problem, value=value, origin=origin)
    if spec.kind == "actions":
        for name in value:
            if name not in known_actions:
                raise ConfigError(
                    spec.key,
                    f"unknown action {name!r} (known: {', '.join(sorted(known_actions))})",
                    value=name,
                    origin=origin,
                )


def _assemble(values: Mapping[str, Any]) -> AgentConfig:
    top: dict[str, Any] = {}
    per_section: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if "." in key:
            sec, name = key.split(".", 1)
            per_section.setdefault(sec, {})[name] = value
        else:
            top[key] = value
    for name, cls, _ in sections():
        top[name] = cls(**per_section.get(name, {}))
    return AgentConfig(**top)


def _check_cross(config: AgentConfig) -> None:
    m = config.manager
    if m.url:
        for key in ("uuid", "key"):
            if not getattr(m, key):
                raise ConfigError(f"manager.{key}", f"required when manager.url is set ({m.url!r})", value="")
        if m.url.startswith("http://") and m.fingerprint:
            raise ConfigError(
                "manager.fingerprint",
                "certificate pinning needs an https:// manager.url",
                value=m.fingerprint,
            )


def exposed_secrets(path: str | os.PathLike[str] | None, config: AgentConfig) -> str | None:
    """Why ``path`` leaks the config's secrets (manager key, server key) to other users, or None."""
    if path is None or not (config.manager.key or config.manager.server_key):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_mode & 0o077:
        return (
            f"{os.fspath(path)} holds manager.key but is accessible to other users "
            f"(mode {st.st_mode & 0o777:04o}): chmod 600 {os.fspath(path)}"
        )
    return None
