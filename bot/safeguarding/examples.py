"""The examples the safeguarding gate learns from: case files, one per writer, in the format `policybot eval` scores.

    escalate:                       # concerns
      - {q: "...", route: dsl, category: neglect}
      - {q: "...", route: staff-allegation, category: staff-conduct}
      - {q: "...", route: staff-allegation, about_head: true, category: staff-conduct}
    no_escalate:                    # ordinary messages that share the concerns' words
      - {q: "..."}

A file whose staff allegations do not say whether they are about the head says
`about_head_labelled: false`; they then teach the gate what a concern is, not where it goes.

The shipped files are in bot/safeguarding/examples/; a DSL adds a file of their own
(`safeguarding.examples_dir` in the settings) and the gate learns it at the next
start or `policybot index`, with no code change. Errors name the file and the entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from index.errors import PolicyBotError

SHIPPED = Path(__file__).with_name("examples")
ROUTES = ("dsl", "staff-allegation")


class ExamplesError(PolicyBotError):
    """An examples file cannot be read; the message names the file and the entry to fix."""


@dataclass(frozen=True)
class Example:
    text: str
    concern: bool
    route: str | None = None  # "dsl" or "staff-allegation" for a concern
    about_head: bool | None = False  # None: the file does not say (`about_head_labelled: false`)
    category: str | None = None
    source: str = ""  # the file it came from: the writer, for leave-one-writer-out checks

    @property
    def recipient(self) -> str | None:
        """Who a concern goes to: "dsl", "head" (an allegation about an adult) or "chair" (about the head); None when
        the file does not say whether an allegation is about the head."""
        if not self.concern:
            return None
        if self.route == "staff-allegation":
            return None if self.about_head is None else "chair" if self.about_head else "head"
        return "dsl"


def read_case_file(path: Path) -> list[Example]:
    """The examples of one case file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ExamplesError(f"{path}: cannot read it ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                            "fix the YAML or remove the file") from None
    if not isinstance(data, dict) or not isinstance(data.get("escalate", []), list) or not isinstance(data.get("no_escalate", []), list):
        raise ExamplesError(f"{path}: expected lists `escalate:` and `no_escalate:` (see bot/safeguarding/examples.py)")
    labelled = data.get("about_head_labelled", True) is not False
    out: list[Example] = []
    for part, concern in (("escalate", True), ("no_escalate", False)):
        for number, row in enumerate(data.get(part) or [], start=1):
            where = f"{path}: {part} entry {number}"
            if not isinstance(row, dict) or not str(row.get("q") or "").strip():
                raise ExamplesError(f"{where}: needs `q:`, the message as staff would type it")
            route = row.get("route") if concern else None
            if concern and route not in ROUTES:
                raise ExamplesError(f"{where}: `route:` must be dsl (a child's welfare) or staff-allegation (an adult's conduct)")
            about_head = bool(row.get("about_head")) if labelled or route != "staff-allegation" else None
            if about_head and route != "staff-allegation":
                raise ExamplesError(f"{where}: `about_head: true` needs `route: staff-allegation`")
            category = row.get("category")
            out.append(Example(str(row["q"]).strip(), concern, route, about_head,
                               str(category) if concern and category not in (None, "none") else None, path.stem))
    return out


def load_examples(folders: list[Path]) -> list[Example]:
    """Every example of every *.yaml case file in the folders, in a stable order; a folder that is named but
    missing is an error (a DSL's own examples must not be dropped silently)."""
    out: list[Example] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise ExamplesError(f"No safeguarding examples folder at {folder}; fix `safeguarding.examples_dir` in the settings")
        for path in sorted(folder.glob("*.yaml")):
            out.extend(read_case_file(path))
    if not any(e.concern for e in out) or all(e.concern for e in out):
        raise ExamplesError(f"The safeguarding examples in {', '.join(map(str, folders))} need both concerns and ordinary messages")
    return out
