"""`gossipgan config`: every config key with its default and what it does.

    gossipgan config                  # a table: key, default, help
    gossipgan config --yaml           # the defaults as a config file, each key's help beside it
"""

from __future__ import annotations

import argparse

from gossipgan.train.config import describe


def add_parser(sub) -> None:
    p = sub.add_parser("config", help="list every config key (for --set and --config files)",
                       description="Every config key: its default and a one-line description. "
                       "Set one with --set section.key=value, or in a YAML file of sections "
                       "passed with --config.")
    p.add_argument("--yaml", action="store_true",
                   help="print the defaults as a YAML config file with comments")
    p.set_defaults(func=run)


def _value(v) -> str:
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def run(args: argparse.Namespace) -> int:
    rows = describe()
    if args.yaml:
        section = None
        for key, default, text in rows:
            head, name = key.split(".", 1)
            if head != section:
                print(f"{head}:")
                section = head
            print(f"  {name}: {_value(default)}  # {text}")
        return 0
    width = max(len(k) for k, _, _ in rows)
    dwidth = max(len(_value(d)) for _, d, _ in rows)
    for key, default, text in rows:
        print(f"{key:<{width}}  {_value(default):<{dwidth}}  {text}")
    return 0
