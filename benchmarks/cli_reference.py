"""Write docs/cli.md, the reference of every `ddro` subcommand and option, from `ddro.cli.build_parser()`.

    python benchmarks/cli_reference.py            # rewrite docs/cli.md
    python benchmarks/cli_reference.py --check    # exit 1 if docs/cli.md differs from the parser

Walks the argparse parser: nested subcommands (`ddro train sft`), each parser's argument groups
in order, and for each option its flags, value name, default, choices and help (with `%(default)s`
expanded as argparse would).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = Path("docs/cli.md")

HEADER = """# Command-line reference

Generated from `ddro.cli.build_parser()` by `python benchmarks/cli_reference.py`; do not edit by
hand (`tests/test_docs.py` checks that this page matches the parser). Every subcommand reads and
writes plain files; a user error is one line on stderr and exit status 2.
"""


def cell(text) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """`(name, help, parser)` of each subcommand of `parser`, in the order they were added."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            out += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return out


# Options whose choices are transformers' (they differ between its releases): written without them.
TRANSFORMERS_CHOICES = {"lr_scheduler_type": "SCHEDULE"}


def flags(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    takes_value = action.nargs != 0
    value = ""
    if takes_value:
        name = action.metavar or TRANSFORMERS_CHOICES.get(action.dest) or (
            ("{" + ",".join(map(str, action.choices)) + "}") if action.choices else action.dest.upper())
        value = f" {name}" if action.nargs in (None, 1) else f" {name} ..."
    return ", ".join(f"`{option}{value}`" for option in action.option_strings)


def default(action: argparse.Action) -> str:
    if action.required:
        return "required"
    value = action.default
    if value is None or value is argparse.SUPPRESS or (action.nargs == 0 and value is False
                                                       and not isinstance(action, argparse.BooleanOptionalAction)):
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return f"`{value}`"


def help_text(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    text = action.help or ""
    if "%" in text:
        text = parser._get_formatter()._expand_help(action)
    if action.dest in TRANSFORMERS_CHOICES:
        text = f"{text}; a transformers `SchedulerType` such as linear, cosine, constant"
    elif action.choices and not isinstance(action, argparse._SubParsersAction) and action.metavar:
        text = f"{text} (one of: {', '.join(map(str, action.choices))})".strip()
    return cell(text)


def option_rows(parser: argparse.ArgumentParser) -> list[str]:
    from ddro.cli import TRAINER_OPTIONS

    lines = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions
                   if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and a.help != argparse.SUPPRESS]
        if not actions:
            continue
        if group.title == TRAINER_OPTIONS:  # they differ between transformers releases
            lines += ["", f"*{group.title}*: every other option of the installed transformers' `TrainingArguments` "
                      "(e.g. `--gradient_accumulation_steps`, `--logging_steps`, `--save_strategy`); `--help` lists them."]
            continue
        lines += ["", f"*{group.title}*", "", "| option | default | help |", "|---|---|---|"]
        lines += [f"| {flags(a)} | {default(a)} | {help_text(parser, a)} |" for a in actions]
    return lines


def section(path: list[str], summary: str, parser: argparse.ArgumentParser) -> list[str]:
    lines = ["", f"{'#' * min(len(path) + 1, 4)} `{' '.join(path)}`", ""]
    description = parser.description or summary
    if description:
        lines.append(cell(description))
    children = subcommands(parser)
    if children:
        lines += ["", "| subcommand | what it does |", "|---|---|"]
        lines += [f"| `{' '.join([*path, name])}` | {cell(text)} |" for name, text, _ in children]
    lines += option_rows(parser)
    for name, text, child in children:
        lines += section([*path, name], text, child)
    return lines


def reference() -> str:
    from ddro.cli import build_parser

    parser = build_parser()
    return HEADER + "\n".join(section([parser.prog], parser.description or "", parser)) + "\n"


def main(argv=None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help=f"write nothing; exit 1 if {OUTPUT} differs")
    args = parser.parse_args(argv)
    path = root / OUTPUT
    text = reference()
    current = path.read_text() if path.is_file() else None
    if args.check:
        if current != text:
            print(f"{OUTPUT} is stale: run `python benchmarks/cli_reference.py`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        path.write_text(text)
        print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
