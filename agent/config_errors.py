"""Turn a pydantic ``ValidationError`` into lines a Qlik admin can act on.

Each line names the key path as written in the file, the bad value (secrets hidden) and what is
expected, with a did-you-mean for unknown and missing keys. It works on any pydantic model: the
config's root model is passed in, so the composed model of the loaded plugins is covered too.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

#: Branch labels pydantic puts into the location of an error inside a union (``str | int``).
_UNION_TAGS = {"str", "int", "float", "bool", "none", "list", "dict"}

_SECRET_WORDS = ("password", "token", "secret")

#: ``(loc, model) -> extra text`` for an unknown key; lets the caller add what it knows (such
#: as "no loaded plugin reads this key").
UnknownKeyHint = Callable[[tuple[Any, ...], Any], str]


def unwrap_model(annotation: Any) -> Any:
    """The pydantic model class inside an annotation (``X | None``, ``list[X]``), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = unwrap_model(arg)
        if found is not None:
            return found
    return None


def field_in(model: Any, key: Any) -> Any:
    """The field of ``model`` named ``key`` (by alias or Python name), or None."""
    for name, info in (getattr(model, "model_fields", None) or {}).items():
        if key in (name, info.alias):
            return info
    return None


def close_key(key: str, allowed: list[str], cutoff: float = 0.6) -> str | None:
    """The allowed key ``key`` was probably meant to be, or None."""
    for candidate in allowed:
        if candidate.lower() == key.lower():
            return candidate  # only the case differs: configQrs for configQRS
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=cutoff)
    return close[0] if close else None


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def near_miss(key: str, node: Any, known: list[str]) -> str:
    """``; the file has 'configQrs' here ...`` when ``node`` holds a key close to the missing ``key``
    that is not a key of its own (so the user's settings are there under another name)."""
    if not isinstance(node, Mapping):
        return ""
    others = [str(k) for k in node if str(k) not in known]
    found = close_key(key, others, cutoff=0.75)
    if found is None:
        return ""
    return f"; the file has {found!r} here, which the agent does not read: is it {key!r} misspelt?"


def format_validation_error(
    exc: ValidationError,
    data: Any,
    root: type[BaseModel],
    *,
    unknown_key_hint: UnknownKeyHint | None = None,
    top: str = "(top level)",
) -> list[str]:
    """One line per problem: ``key.path: got VALUE; expected ...``. Secrets are not echoed.

    ``root`` is the model ``data`` was validated against. Errors of the branches of one union
    (``rotation: str | int``) are merged into one line. ``top`` names the document itself.
    """
    models = _model_names(root)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    locs: dict[str, tuple[Any, ...]] = {}
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        path = _loc_to_path(loc, models) or top
        groups.setdefault(path, []).append(err)
        locs.setdefault(path, tuple(x for x in loc if str(x) not in _UNION_TAGS))
    problems = []
    for path, errors in groups.items():
        loc = locs[path]
        kinds = {e.get("type") for e in errors}
        if "extra_forbidden" in kinds:
            model = _model_at(root, loc)
            extra = unknown_key_hint(loc, model) if unknown_key_hint else ""
            problems.append(f"{path}: unknown key; {_did_you_mean(model, loc, extra)}")
            continue
        if "missing" in kinds:
            info = _field_at(root, loc)
            what = info.description if info is not None and info.description else ""
            what = f"; {what[:1].lower()}{what[1:]}" if what else ""
            model = _model_at(root, loc)
            known = [i.alias or n for n, i in (getattr(model, "model_fields", None) or {}).items()]
            hint = near_miss(str(loc[-1]), _value_at(data, loc[:-1]), known) if loc else ""
            problems.append(f"{path}: required key is missing{hint}{what}")
            continue
        if kinds & {"model_type", "dict_type"}:
            section = _section_model(root, loc)
            if section is not None:
                keys = ", ".join(info.alias or name for name, info in section.model_fields.items())
                problems.append(
                    f"{path}: got {_shown(errors[0].get('input'), loc)}; expected a section with"
                    f" the keys {keys}"
                )
                continue
        wanted = list(dict.fromkeys(_expected(e) for e in errors))
        if len(wanted) > 1 and all(w.startswith("expected ") for w in wanted):
            # One line for the branches of a union: "expected text or a whole number".
            wanted = ["expected " + " or ".join(w.removeprefix("expected ") for w in wanted)]
        expected = "; ".join(wanted)
        problems.append(f"{path}: got {_shown(errors[0].get('input'), loc)}; {expected}")
    return problems


def _value_at(data: Any, loc: tuple[Any, ...]) -> Any:
    node = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list) and -len(node) <= item < len(node):
            node = node[item]
        elif isinstance(node, Mapping):
            node = node.get(item)
        else:
            return None
    return node


def _model_names(root: type[BaseModel]) -> set[str]:
    """The class names of every model reachable from ``root`` (they appear in error
    locations as union branches, never as keys of the file)."""
    names: set[str] = set()
    stack: list[Any] = [root]
    seen: set[int] = set()
    while stack:
        model = stack.pop()
        if id(model) in seen:
            continue
        seen.add(id(model))
        names.add(model.__name__)
        for info in model.model_fields.values():
            stack.extend(_models_in(info.annotation))
    return names


def _models_in(annotation: Any) -> list[Any]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _loc_to_path(loc: tuple[Any, ...], models: set[str]) -> str:
    parts: list[str] = []
    for index, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item}]")
            continue
        text = str(item)
        if text.startswith(("function-", "literal[", "union[")) or "[" in text:
            continue  # pydantic's internal union/validator branch names
        if index > 0 and (text in _UNION_TAGS or text in models):
            continue  # the branch of a union (``MaxReleases | None``), not a key of the file
        parts.append(("." if parts else "") + text)
    return "".join(parts)


def _shown(value: Any, loc: tuple[Any, ...]) -> str:
    """The bad value as the message shows it: secrets hidden, sections summarised."""
    last = str(loc[-1]).lower() if loc else ""
    if any(word in last for word in _SECRET_WORDS):
        return "(hidden)"
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return str(value).lower()  # as written in YAML
    if isinstance(value, dict):
        keys = ", ".join(map(str, list(value)[:5])) + (", ..." if len(value) > 5 else "")
        return f"a section (keys: {keys})" if value else "an empty section"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    return short(value)


def _expected(err: Mapping[str, Any]) -> str:
    """What the key expects, in the words of a config file rather than of Python types."""
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    simple = {
        "int_parsing": "expected a whole number",
        "int_type": "expected a whole number",
        "int_from_float": "expected a whole number",
        "float_parsing": "expected a number",
        "float_type": "expected a number",
        "bool_parsing": "expected true or false",
        "bool_type": "expected true or false",
        "string_type": "expected text",
        "list_type": "expected a list (lines starting with '- ')",
        "dict_type": "expected a section of 'key: value' lines",
        "model_type": "expected a section of 'key: value' lines",
        "model_attributes_type": "expected a section of 'key: value' lines",
    }
    if kind in simple:
        return simple[kind]
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        sign, key = bounds[kind]
        bound = ctx.get(key)
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"expected a number {sign} {bound}"
    if kind == "string_too_short":
        return "expected a non-empty value"
    if kind in ("literal_error", "enum"):
        return f"expected {ctx.get('expected')}"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:]


def _model_at(root: Any, loc: tuple[Any, ...]) -> Any:
    """The model class that holds the last key of ``loc`` (``None`` if it cannot be told)."""
    model: Any = root
    for item in loc[:-1]:
        if isinstance(item, int):
            continue
        info = field_in(model, item)
        if info is None:
            return None
        model = unwrap_model(info.annotation)
        if model is None:
            return None
    return model


def _section_model(root: Any, loc: tuple[Any, ...]) -> Any:
    """The model expected at ``loc`` (also for a list item such as ``user[1]``)."""
    while loc and isinstance(loc[-1], int):
        loc = loc[:-1]
    info = _field_at(root, loc)
    return unwrap_model(info.annotation) if info is not None else None


def _field_at(root: Any, loc: tuple[Any, ...]) -> Any:
    model = _model_at(root, loc)
    return field_in(model, loc[-1]) if model is not None and loc else None


def _did_you_mean(model: Any, loc: tuple[Any, ...], otherwise: str = "") -> str:
    """The near-miss key, else ``otherwise`` (why the key may be unknown), then the keys."""
    fields = getattr(model, "model_fields", {}) or {}
    allowed = sorted(info.alias or name for name, info in fields.items())
    close = close_key(str(loc[-1]), allowed)
    hint = f"did you mean {close!r}? " if close else otherwise
    return f"{hint}allowed keys here: {', '.join(allowed) or '(none)'}"


def ignored_key_warnings(data: Any, root: type[BaseModel]) -> list[str]:
    """Unknown keys in sections that ignore them (Butler's sections, which Butler's other
    features use) that look like a misspelt key the model reads, one warning each."""
    warnings: list[str] = []

    def walk(model: Any, node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        fields = {info.alias or name: info for name, info in model.model_fields.items()}
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            info = fields.get(key)
            if info is None:
                if model.model_config.get("extra", "ignore") == "ignore":
                    close = close_key(str(key), sorted(fields), cutoff=0.8)
                    if close:
                        warnings.append(f"{where}: unknown key, ignored; did you mean {close!r}?")
                continue
            sub = unwrap_model(info.annotation)
            if sub is not None:
                walk(sub, value, where)

    walk(root, data, "")
    return warnings
