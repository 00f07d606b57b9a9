"""``license-agent simulator``: run the bundled QRS simulator (see docs/simulator.md)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from agent.simulator import cli

    parser = subparsers.add_parser(
        "simulator",
        help="run a QRS simulator over HTTPS with client certificates (for trials and tests)",
        description="Run the bundled QRS simulator: HTTPS with required client certificates,"
        " the QRS endpoints the agent uses, and fault injection. See docs/simulator.md.",
    )
    cli.add_arguments(parser)
    parser.set_defaults(handler=cli.run)
