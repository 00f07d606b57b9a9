"""Command line for the QRS simulator (``license-agent simulator``, ``python -m agent.simulator``).

:func:`add_arguments` declares the options on any ``argparse`` parser and :func:`run` acts on them:
it generates or loads a state, optionally dumps it and exits, starts the server, optionally writes
a complete agent config pointing at it, prints exactly one line ``listening on https://HOST:PORT``
to stdout, and serves until SIGINT or SIGTERM. Everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .agent_config import agent_config_yaml
from .certs import CertificateError
from .clock import Clock
from .faults import ACTIONS, FaultConfigError
from .generate import generate_state
from .server import Simulator
from .state import SimulatorState, StateError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the simulator's options on ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=4242, help="port to bind; 0 picks a free one (default 4242)"
    )
    parser.add_argument(
        "--cert-dir",
        type=Path,
        default=Path("sim-certs"),
        help="certificate directory; root.pem, client.pem, client_key.pem, server.pem are created "
        "if missing (default ./sim-certs)",
    )
    parser.add_argument("--users", type=int, default=2000, help="users to generate (default 2000)")
    parser.add_argument("--seed", type=int, default=1, help="generation seed (default 1)")
    parser.add_argument(
        "--state", type=Path, help="load this state file (JSON) instead of generating"
    )
    parser.add_argument(
        "--now",
        help="freeze the simulator clock at this ISO date-time (default: the state's 'now', else real time)",
    )
    parser.add_argument(
        "--dump-state",
        type=Path,
        metavar="FILE",
        help="write the generated or loaded state to FILE as JSON and exit without serving",
    )
    parser.add_argument(
        "--write-config",
        type=Path,
        metavar="FILE",
        help="write a complete agent config for this server: the monitor into a SQLite history,"
        " a dry-run release with the example's rules (see the README's next steps)",
    )
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="added latency per QRS request"
    )
    parser.add_argument(
        "--jitter-ms", type=float, default=0.0, help="extra random latency, 0..N ms"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="RULE",
        help="a fault rule: 'ACTION@PATTERN[;key=value...]' (e.g. 'error@GET /qrs/user*;status=503;rate=0.2') "
        f"or a JSON object; actions: {', '.join(ACTIONS)}; repeatable",
    )
    parser.add_argument(
        "--faults", type=Path, metavar="FILE", help="a fault document (JSON), see docs/simulator.md"
    )


def parse_fault(text: str) -> dict[str, Any]:
    """``'error@GET /qrs/user*;status=503;rate=0.5'`` (or a JSON object) -> a rule dict."""
    text = text.strip()
    if text.startswith("{"):
        try:
            rule = json.loads(text)
        except ValueError as error:
            raise FaultConfigError(f"--fault {text!r}: invalid JSON ({error})") from None
        if not isinstance(rule, dict):
            raise FaultConfigError(f"--fault {text!r}: expected a JSON object")
        return rule
    head, *options = text.split(";")
    action, sep, match = head.partition("@")
    if not sep or not match.strip():
        raise FaultConfigError(f"--fault {text!r}: expected ACTION@PATTERN[;key=value...]")
    rule: dict[str, Any] = {"action": action.strip(), "match": match.strip()}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise FaultConfigError(f"--fault {text!r}: option {option!r} is not key=value")
        rule[key.strip()] = _scalar(value.strip())
    return rule


def _scalar(value: str) -> Any:
    for convert in (int, float):
        with contextlib.suppress(ValueError):
            return convert(value)
    if value.lower() in ("null", "none"):
        return None
    return value


#: The first line of the configs ``--write-config`` writes; it overwrites no other file.
WRITTEN_BY = "# Written by `license-agent simulator --write-config`"


def config_yaml(sim: Simulator, host: str, folder: Path, users: int) -> str:
    """The agent config for ``sim`` (see :mod:`.agent_config`), to be written into ``folder``."""
    assert sim.certs is not None
    return agent_config_yaml(
        host=host,
        port=sim.port,
        certs=sim.certs,
        folder=folder,
        users=users,
        header=f"{WRITTEN_BY}: it works while the simulator runs.",
    )


def _not_ours(path: Path) -> bool:
    """True when ``path`` exists and was not written by ``--write-config`` (someone's config)."""
    try:
        with path.open(encoding="utf-8-sig") as handle:
            return not handle.readline().startswith(WRITTEN_BY)
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError):
        return True


def run(args: argparse.Namespace) -> int:
    """Run the simulator as ``args`` say; returns the process exit code."""
    try:
        clock = Clock(args.now)
        if args.state is not None:
            document = json.loads(Path(args.state).read_text(encoding="utf-8"))
            state = SimulatorState.from_dict(document, clock.now())
        else:
            state = generate_state(args.users, args.seed, clock.now())
        faults: dict[str, Any] = {}
        if args.faults is not None:
            faults = json.loads(Path(args.faults).read_text(encoding="utf-8"))
            if not isinstance(faults, dict):
                raise FaultConfigError(f"{args.faults}: expected a JSON object")
        rules = [parse_fault(text) for text in args.fault]
        if rules:
            faults["append_rules"] = list(faults.get("append_rules") or []) + rules
    except OSError as error:
        return _fail(f"cannot read {error.filename}: {error.strerror}")
    except json.JSONDecodeError as error:
        return _fail(f"invalid JSON: {error}")
    except (StateError, FaultConfigError, ValueError) as error:
        return _fail(str(error))

    if args.write_config is not None and _not_ours(Path(args.write_config)):
        return _fail(
            f"{args.write_config} exists and was not written by --write-config; it is not"
            " overwritten. Name another file"
        )

    if args.dump_state is not None:
        document = state.to_dict()
        if document.get("now") is None and args.now:
            document["now"] = args.now
        Path(args.dump_state).write_text(
            json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        print(f"state written to {args.dump_state}", file=sys.stderr)
        return 0

    try:
        sim = Simulator(
            state,
            now=args.now,
            host=args.host,
            port=args.port,
            cert_dir=args.cert_dir,
            faults=faults,
            latency_ms=args.latency_ms,
            jitter_ms=args.jitter_ms,
            warm_cache=True,
        )
        sim.start()
    except FaultConfigError as error:
        return _fail(f"fault configuration: {error}")
    except CertificateError as error:
        return _fail(str(error))
    except OSError as error:
        return _fail(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}")

    stop = threading.Event()
    _install_signal_handlers(stop)
    try:
        if args.write_config is not None:
            config_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
            target = Path(args.write_config)
            text = config_yaml(sim, config_host, target.resolve().parent, len(state.users))
            target.write_text(text, encoding="utf-8")
        counts = {name: len(items) for name, items in state.allocations.items() if items}
        print(
            f"simulator: {len(state.users)} users, allocations {counts}, certs in {sim.cert_dir}",
            file=sys.stderr,
        )
        print(f"listening on {sim.url}", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


def _install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum: int, frame: object) -> None:
        stop.set()

    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):  # SIGBREAK: Ctrl-Break on Windows
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        with contextlib.suppress(
            ValueError, OSError
        ):  # not the main thread, or not allowed on this platform
            signal.signal(signum, handler)


def _fail(message: str) -> int:
    print(f"simulator: {message}", file=sys.stderr)
    return 2
