"""Composing the config model from the sections plugins declare.

A plugin declares, with ``sla_settings``, the settings it owns and where they go in the Butler
file (:class:`~agent.models.SettingsSection`); :func:`compose_model` builds the model of the
whole file from the core's models in :mod:`agent.config` plus each loaded plugin's section at
its path, and :func:`json_schema` is that model's JSON Schema. No file is read here (see
:mod:`agent.config_load`).
"""

from __future__ import annotations

import contextlib
import copy
import re
import typing
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model
from pydantic.json_schema import SkipJsonSchema

from agent.config import AgentConfig, Butler, PluginSection, SiteSettings
from agent.config_errors import field_in, unwrap_model


class SectionError(ValueError):
    """A plugin declared a section the core cannot place; the message says why."""


def _python_name(key: str) -> str:
    # customProperty -> custom_property, influxDb -> influx_db: attribute access stays natural.
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()
    return re.sub(r"\W", "_", name)


def _container_of(model: Any, key: str) -> tuple[str, Any]:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            sub = unwrap_model(info.annotation)
            if sub is None:
                raise SectionError(f"{key} is a value, not a section")
            return name, sub
    raise SectionError(f"there is no section {key!r} to put it in")


#: The key of a tree node that holds the section declared at that node's own path.
_OWN = object()


def place_sections(root: Any, sections: Sequence[PluginSection]) -> Any:
    """``root`` (a model class) with each section's model added at its path.

    A section may lie inside another plugin's section (the influxdb plugin's
    ``serverLicenseMonitor.destination.influxDb`` inside the site license monitor's). Raises
    :class:`SectionError` for a path that is not below a known section or that names a key the
    core (or an earlier section) already has.
    """
    tree: dict[Any, Any] = {}
    for owned in sections:
        node = tree
        for key in owned.path.split("."):
            node = node.setdefault(key, {})
        if _OWN in node:
            raise SectionError(f"{owned.path} is declared twice")
        node[_OWN] = owned
    return _build(root, tree, "")


def _build(model: Any, tree: Mapping[Any, Any], prefix: str) -> Any:
    fields: dict[str, Any] = {}
    for key, node in tree.items():
        if key is _OWN:
            continue
        where = f"{prefix}{key}"
        owned: PluginSection | None = node.get(_OWN)
        inner = {k: v for k, v in node.items() if k is not _OWN}
        if owned is None:
            name, sub = _container_of(model, key)
            fields[name] = _retyped(model.model_fields[name], _build(sub, inner, f"{where}."))
            continue
        if field_in(model, key) is not None:
            raise SectionError(f"{where} is a key of the core, not free for a plugin")
        if not owned.loaded:
            # A disabled plugin's key: accepted as written so that the file may keep it
            # switched off; agent.config_load reports it when it is switched on.
            fields[_python_name(key)] = (
                SkipJsonSchema[Any],
                Field(default=None, alias=key, description=_description(owned)),
            )
            continue
        section_model = owned.section.model
        if inner:
            if unwrap_model(section_model) is not section_model:
                raise SectionError(f"{where} of plugin {owned.plugin} is a value, not a section")
            section_model = _build(section_model, inner, f"{where}.")
        fields[_python_name(key)] = _section_field(section_model, key, _description(owned))
    if not fields:
        return model
    return create_model(model.__name__, __base__=model, __module__=model.__module__, **fields)


def _section_field(model: Any, key: str, description: str) -> tuple[Any, Any]:
    """The field of a plugin's section. An empty value (``tag:``) is what the model makes
    of ``None`` when it accepts it (``OptionalList`` makes an empty list), else ``None``.
    An absent section holds the model's defaults when it has one for every key (so
    ``config.butler.influx_db.enable`` reads as it did); ``settings(path)`` still tells it
    apart (``None``)."""
    try:
        empty = TypeAdapter(model).validate_python(None)
    except (ValidationError, TypeError, ValueError):
        default = None
        if isinstance(model, type) and issubclass(model, BaseModel):
            with contextlib.suppress(ValidationError):
                default = model()
        return model | None, Field(default=default, alias=key, description=description)
    return model, Field(default=empty, alias=key, description=description)


def _description(owned: PluginSection) -> str:
    model = owned.section.model
    doc = ""
    if isinstance(model, type) and issubclass(model, BaseModel):
        doc = (model.__doc__ or "").strip().split("\n\n")[0]  # a list's says nothing
    for meta in getattr(model, "__metadata__", ()):  # Annotated[..., Field(description=...)]
        doc = getattr(meta, "description", None) or doc
    return f"{' '.join(doc.split())} (plugin {owned.plugin})".strip()


def _retyped(info: Any, model: Any) -> tuple[Any, Any]:
    """A field like ``info`` whose section model is now ``model`` (a composed subclass)."""
    new = copy.copy(info)
    annotation = info.annotation
    if isinstance(info.default, BaseModel):
        new.default = model()
    if typing.get_origin(annotation) is list:
        annotation = list[model]
    elif unwrap_model(annotation) is not annotation:
        annotation = model | None
    else:
        annotation = model
    new.annotation = annotation
    return annotation, new


@lru_cache(maxsize=32)
def compose_model(sections: tuple[PluginSection, ...]) -> type[AgentConfig]:
    """The model of the whole file: the core's keys plus each plugin's section at its path.

    Sites (``Butler.licenseAgent.sites[].qlikSenseLicense``) get the same composed
    ``qlikSenseLicense`` block as the file.
    """
    butler = place_sections(Butler, sections)
    feature = unwrap_model(butler.model_fields["qlik_sense_license"].annotation)
    site = _build_with(SiteSettings, "qlik_sense_license", feature)
    agent = unwrap_model(butler.model_fields["license_agent"].annotation)
    agent = _build_with(agent, "sites", site)
    butler = _build_with(butler, "license_agent", agent)
    return _build_with(AgentConfig, "butler", butler)


def _build_with(model: Any, name: str, sub: Any) -> Any:
    return create_model(
        model.__name__,
        __base__=model,
        __module__=model.__module__,
        **{name: _retyped(model.model_fields[name], sub)},
    )


#: The JSON Schema shipped for editors; regenerate with ``python -m agent.config_schema``.
SCHEMA_PATH = Path(__file__).parent / "schema" / "config.schema.json"


def json_schema(sections: Sequence[PluginSection] = ()) -> dict[str, Any]:
    """The JSON Schema of the config file with the core's keys and ``sections`` (aliases as
    keys); :func:`agent.plugins.json_schema` passes the loaded plugins' sections."""
    schema = compose_model(tuple(sections)).model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.invalid/sense-license-agent/config.schema.json",
        "title": "sense-license-agent configuration (a Butler config file)",
        "description": "Keys the agent reads from a Butler config. Other Butler sections are"
        " allowed and ignored. Generated from agent/config.py and the settings of the plugins;"
        " do not edit by hand.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }
