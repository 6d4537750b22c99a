"""The shell commands shown in README.md and docs/: extracted, then classified as composed, run or exempt."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
ENTRY_POINTS = {"search", "final", "train", "profile"}
MAKE_ENTRY = {
    "search": "search",
    "final": "final",
    "train": "train",
    "profile": "profile",
    "latency-table": "profile",
}
PLACEHOLDER = re.compile(r"<[^<>\s][^<>]*>")

# Commands that cannot run here, or need no check, each with the reason (a regex on the command).
EXEMPT: dict[str, str] = {
    r"^pip install|^python3 -m venv|\.venv/bin/pip install": "installs packages (CI's `make install` runs the real install)",
    r"^qai-hub configure": "needs a Qualcomm AI Hub token (remote service)",
    r"^make collect-profiles( ARGS=.*)?$": "needs a Qualcomm AI Hub token (remote service)",
    r"^wandb sync": "uploads to W&B (network)",
    r"^tensorboard --logdir": "starts a long-running server",
    r"^source ": "shell built-in reading the services' environment (CI runs it)",
    r"^make (services|services-stop)$": "installs and starts PostgreSQL, Slurm and Chromium as root (CI runs it)",
    r"^make (bench-[\w-]+)( ARGS=.*)?$": "benchmarks run for minutes to hours (their bench/ scripts are exercised by tests)",
    r"^make (docs|dashboard)( .*)?$": "starts a long-running server (the docs build itself is tested)",
    r"^HWNAS_REQUIRE_\S+=1 .*make test$": "the CI test run itself",
    r"^export ": "sets an environment variable",
    r"^bash bench/gpu_check\.sh": "needs a CUDA GPU (it refuses at once without one; its CPU dry run is a slow test)",
}


@dataclass(frozen=True)
class Command:
    """One command as shown, where it was found, and its words with placeholders filled."""

    text: str
    page: Path
    line: int

    @property
    def words(self) -> list[str]:
        return shlex.split(PLACEHOLDER.sub("PLACEHOLDER", self.text))


def _strip_comment(line: str) -> str:
    """Drop a trailing `# comment` that is outside quotes."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def commands(pages: list[Path] = PAGES) -> list[Command]:
    """Every command in the ```bash blocks of the pages (continued lines joined, `&&` and `;` split)."""
    out = []
    for page in pages:
        lines = page.read_text().splitlines()
        in_bash, buf, start = False, "", 0
        for no, line in enumerate(lines, start=1):
            if line.startswith("```"):
                in_bash = not in_bash and line.strip() in ("```bash", "```sh", "```shell")
                continue
            if not in_bash:
                continue
            text = _strip_comment(line).strip()
            if not buf:
                start = no
            if text.endswith("\\"):
                buf += text[:-1] + " "
                continue
            full, buf = (buf + text).strip(), ""
            for part in re.split(r"\s*(?:&&|;)\s*", full):
                if part:
                    out.append(Command(part, page, start))
    return out


def exemption(cmd: Command) -> str | None:
    """The reason a command is exempt, or None."""
    return next((why for pattern, why in EXEMPT.items() if re.search(pattern, cmd.text)), None)


def entry_and_overrides(cmd: Command) -> tuple[str, list[str], bool] | None:
    """(config name, overrides, multirun) of a `python src/X.py …`, `python -m hwnas X …` or `make X ARGS=…`."""
    words = [w for w in cmd.words if not re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", w)] or [""]  # env prefixes
    if words[0] == "python" and len(words) > 1 and re.fullmatch(r"src/\w+\.py", words[1]):
        name, rest = Path(words[1]).stem, words[2:]
    elif words[:3] == ["python", "-m", "hwnas"] and len(words) > 3:
        name, rest = words[3], words[4:]
    elif words[0] == "make" and len(words) > 1 and words[1] in MAKE_ENTRY:
        args = [w.split("=", 1)[1] for w in words[2:] if w.startswith("ARGS=")]
        rest = shlex.split(args[0]) if args else []
        if words[1] == "final":
            rest = ["run=PLACEHOLDER", *rest]
        if words[1] == "latency-table":
            rest = ["table.n=50", *rest]
        name = MAKE_ENTRY[words[1]]
    else:
        return None
    if name not in ENTRY_POINTS:
        return None
    multirun = any(w in ("-m", "--multirun") for w in rest)
    return name, [w for w in rest if w not in ("-m", "--multirun")], multirun
