"""The configuration reference, generated from the comments in `conf/`.

Every key of every YAML file under `conf/` carries a one-line comment: on the line directly above it or at
the end of its line. This module reads those comments (a line-based reader: the YAML stays the single source,
the comments are the documentation) and writes `docs/reference/config.md`: every group, option, key, default
and comment, with the class each `_target_` names. `--check` fails when a key has no comment or when the
checked-in page is out of date; the test tier runs it.

    python -m hwnas.utils.config_reference            # rewrite docs/reference/config.md
    python -m hwnas.utils.config_reference --check    # exit 1 with the keys to fix
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CONF = ROOT / "conf"
PAGE = ROOT / "docs" / "reference" / "config.md"

_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_@/][\w@/.\-]*)\s*:(?=\s|$)(?P<rest>.*)$")
_COMMENT = re.compile(r"^\s*#(?!\s*@package)\s?(?P<text>.*)$")
MAIN_CONFIGS = ("search", "final", "train", "profile")
HYDRA_KEYS = {  # Hydra's own keys explain themselves; a comment on them is still shown when present
    "_target_": "the class this node builds (hydra.utils.instantiate)",
    "_partial_": "built as a partial: the caller adds the runtime arguments",
    "_recursive_": "whether nested nodes are built too",
    "_convert_": "how nested configs are passed (none, partial, object, all)",
}


@dataclasses.dataclass(frozen=True)
class Key:
    """One key of one YAML file: its dotted path, default as written, comment and line number."""

    path: str
    default: str
    comment: str
    line: int


@dataclasses.dataclass(frozen=True)
class Option:
    """One YAML file: its group (`""` for a main config), option name, description and keys."""

    group: str
    name: str
    file: Path
    description: str
    package: str
    keys: tuple[Key, ...]


def _inline_comment(rest: str) -> tuple[str, str]:
    """Split `value  # comment` (a `#` inside quotes or `${…}` is part of the value)."""
    value, comment, _ = _split_comment(rest)
    return value, comment


def _split_comment(rest: str) -> tuple[str, str, int | None]:
    """(value, comment, index of the comment's `#` in `rest`, or None)."""
    depth, quote = 0, ""
    for i, ch in enumerate(rest):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        elif ch == "#" and depth <= 0 and (i == 0 or rest[i - 1].isspace()):
            return rest[:i].strip(), rest[i + 1 :].strip(), i
    return rest.strip(), "", None


def parse(path: Path) -> tuple[str, str, list[Key]]:
    """Return (description, package, keys) of one YAML file.

    The description is every comment before the first key; a key's comment is its inline comment (continued by
    comment lines whose `#` sits in the same column), or else the comment block directly above it (no blank
    line between). List entries (the defaults list, objectives)
    belong to the key that holds them and are shown as its default.
    """
    lines = path.read_text().splitlines()
    description, package, keys = [], "", []
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    above: list[str] = []
    seen_key = False
    inline_col = None  # column of the last key's inline `#`: a comment line starting there continues it
    block_indent = None  # inside a `|` / `>` block scalar: its key's indent
    for no, line in enumerate(lines, start=1):
        if block_indent is not None:
            if not line.strip() or len(line) - len(line.lstrip()) > block_indent:
                continue
            block_indent = None
        stripped = line.strip()
        if stripped.startswith("# @package"):
            package = stripped.split(None, 2)[-1]
            continue
        if not stripped:
            above, inline_col = [], None
            continue
        m = _COMMENT.match(line)
        if m:
            if inline_col is not None and not above and line.index("#") == inline_col:
                keys[-1] = dataclasses.replace(
                    keys[-1], comment=f"{keys[-1].comment} {m.group('text').strip()}"
                )
                continue
            inline_col = None
            (above if seen_key else description).append(m.group("text").strip())
            continue
        m = _KEY.match(line)
        if not m:  # a list entry or a continued flow value: part of the key above
            if keys and stripped.startswith("-"):
                value, comment = _inline_comment(stripped[1:])
                last = keys[-1]
                entry = value + (f"  ({comment})" if comment else "")
                joined = f"{last.default}; {entry}" if last.default else entry
                keys[-1] = dataclasses.replace(last, default=joined)
            above = []
            continue
        indent = len(m.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        value, comment, at = _split_comment(m.group("rest"))
        inline_col = m.start("rest") + at if comment else None
        if value in ("|", ">", "|-", ">-"):
            block_indent = indent
        if not comment and above:
            comment = " ".join(above)
        if not comment and m.group("key") in HYDRA_KEYS:
            comment = HYDRA_KEYS[m.group("key")]
        dotted = ".".join([k for _, k in stack] + [m.group("key")])
        keys.append(Key(dotted, value, comment, no))
        seen_key = True
        above = []
        if value == "":
            stack.append((indent, m.group("key")))
    return " ".join(description), package, keys


def options(conf: Path = CONF) -> list[Option]:
    """Every main config and every option of every group under `conf`, in a stable order."""
    out = []
    for path in sorted(conf.rglob("*.yaml")):
        rel = path.relative_to(conf)
        group = "/".join(rel.parts[:-1])
        if group == "" and path.stem not in MAIN_CONFIGS:
            continue
        description, package, keys = parse(path)
        out.append(Option(group, path.stem, rel, description, package, tuple(keys)))
    out.sort(key=lambda o: (o.group != "", o.group, o.name))
    return out


def missing_comments(opts: list[Option]) -> list[str]:
    """`conf/<file>:<line> <key>` for every key without a comment."""
    return [f"conf/{o.file}:{k.line} {k.path}" for o in opts for k in o.keys if not k.comment]


def _target_doc(target: str) -> str:
    """The first line of the docstring of the class a `_target_` names ('' when it cannot be imported)."""
    module, _, name = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), name)
    except Exception:  # noqa: BLE001 - the reference shows what it can; the contract tests check targets
        return ""
    doc = (obj.__doc__ or "").strip().splitlines()
    return doc[0].strip() if doc else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") if text else ""


def render(opts: list[Option]) -> str:
    """The Markdown page."""
    out = [
        "# Configuration reference",
        "",
        "Generated from the comments in `conf/` by `make config-reference` "
        "(`python -m hwnas.utils.config_reference`); do not edit by hand. "
        "A test fails when a key has no comment or when this page is out of date.",
        "",
        "Pick an option of a group with `group=option` on the command line "
        "(`python src/search.py hardware=snapdragon888`); set a key with `key=value` "
        "(`search.n_trials=32`). Keys of a group option live under the group's name "
        "unless the file says `# @package`.",
        "",
    ]
    group = None
    for o in opts:
        if o.group != group:
            group = o.group
            label = "config-main" if group == "" else f"config-{group.replace('/', '-')}"
            out += [f"({label})=", f"## {'Main configs' if group == '' else f'Group `{group}`'}", ""]
        title = f"`{o.name}.yaml`" if o.group == "" else f"`{o.group}={o.name}`"
        label = f"config-{o.group.replace('/', '-') or 'main'}-{o.name}"
        out += [f"({label})=", f"### {title}", "", f"File: `conf/{o.file}`."]
        if o.package:
            out[-1] += f" Package: `{o.package}`."
        if o.description:
            out += ["", o.description]
        for k in o.keys:
            if k.path.endswith("_target_") and k.default:
                doc = _target_doc(k.default)
                out += ["", f"Builds `{k.default}`" + (f": {doc}" if doc else ".")]
        out += ["", "| key | default | what it does |", "|---|---|---|"]
        out += [
            f"| `{k.path}` | {_cell(f'`{k.default}`' if k.default else '')} | {_cell(k.comment)} |"
            for k in o.keys
        ]
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail on a key without a comment or a stale page")
    args = ap.parse_args(argv)
    opts = options()
    missing = missing_comments(opts)
    if missing:
        print(
            f"{len(missing)} key(s) under conf/ have no comment; add a one-line comment above or after each:"
        )
        print("\n".join(f"  {m}" for m in missing))
        if args.check:
            return 1
    text = render(opts)
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run `make config-reference` and commit it")
            return 1
        print(f"config reference in sync: {sum(len(o.keys) for o in opts)} keys in {len(opts)} files")
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text)
    print(f"wrote {PAGE.relative_to(ROOT)}: {sum(len(o.keys) for o in opts)} keys in {len(opts)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
