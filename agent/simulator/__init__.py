"""A Qlik Sense Repository Service (QRS) simulator for tests, benchmarks and demos.

It serves the QRS endpoints this project uses (about, license, access type overview, Professional
and Analyzer allocations, users, ``/table``) over HTTPS with a required client certificate,
enforces the xrfkey and ``X-Qlik-User`` rules, understands the QRS filter language, applies the
7-day quarantine on release, and injects faults on demand. ``docs/simulator.md`` is the manual;
``Simulator`` is the entry point::

    with Simulator(users=500, seed=7, now="2026-06-01T12:00:00Z") as sim:
        requests.get(sim.url + "/qrs/about", ...)
"""

from .certs import CertificateError, CertPaths, ensure_certs
from .clock import NEVER, Clock, format_date, parse_date
from .faults import FaultConfigError, FaultRule, Faults, Stats
from .filtering import CompiledFilter, FilterError, compile_filter, parse_filter
from .generate import generate_state
from .server import USER_HEADER_MESSAGE, XSRF_MESSAGE, Simulator
from .state import SimulatorState, StateError

SimulatorServer = Simulator

__all__ = [
    "NEVER",
    "USER_HEADER_MESSAGE",
    "XSRF_MESSAGE",
    "CertPaths",
    "CertificateError",
    "Clock",
    "CompiledFilter",
    "FaultConfigError",
    "FaultRule",
    "Faults",
    "FilterError",
    "Simulator",
    "SimulatorServer",
    "SimulatorState",
    "StateError",
    "Stats",
    "compile_filter",
    "ensure_certs",
    "format_date",
    "generate_state",
    "parse_date",
    "parse_filter",
]
