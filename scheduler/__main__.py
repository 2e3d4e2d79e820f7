"""`python -m scheduler [--once | --status]`: the catch-up scheduler (Procfile: `scheduler`)."""

from __future__ import annotations

import argparse
import logging
import sys

from mina.errors import ConfigurationError
from mina.settings import get_settings
from scheduler.lock import build_lock
from scheduler.service import run_scheduler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scheduler", description=__doc__)
    parser.add_argument("--once", action="store_true", help="run every job once and exit")
    parser.add_argument("--status", action="store_true", help="print who is the leader and exit")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = get_settings()
    try:
        if args.status:
            holder = build_lock(settings).holder()
            print(f"leader: {holder}" if holder else "leader: none")
            return 0 if holder else 1
        ran = run_scheduler(settings, once=args.once)
    except ConfigurationError as exc:
        print(f"scheduler: configuration error: {exc.message}", file=sys.stderr)
        return 2
    return 0 if ran else 3


if __name__ == "__main__":
    sys.exit(main())
