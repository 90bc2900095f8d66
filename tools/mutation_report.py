"""Score the last mutmut run per module and list every survivor (`make mutation`).

mutmut keeps its verdicts in `mutants/**/*.meta`; this reads them through mutmut's own
modules (pinned in pyproject) rather than scraping its terminal output, and writes
`build/mutation/REPORT.md`: per module the mutants, killed, survivors, and the score
over the mutants that can change behaviour. Two kinds of survivor do not count
against the score, each listed with why:

- message-only: the mutant changes nothing but the wording of a sentence (a string
  with a space in it, such as an error message); clients branch on codes, not prose;
- equivalent: listed in tools/mutation_equivalents.toml with the reason it cannot
  change any figure, status or verdict. Entries match on the function and the mutated
  line, not on mutmut's numbering, so an edit elsewhere does not silently re-aim them.

A mutant that drives the tests past mutmut's CPU-time limit (an endless loop) counts as
killed: the suite does not pass with it. The table shows how many were killed that way.

Exits 1 when a module scores under --min-score, so CI-style use can gate on it.
"""

from __future__ import annotations

import argparse
import io
import sys
import tokenize
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

EQUIVALENTS = Path(__file__).with_name("mutation_equivalents.toml")
REPORT = Path("build/mutation/REPORT.md")


@dataclass(frozen=True, slots=True)
class Survivor:
    name: str
    function: str  # the mutant's name without mutmut's counter
    removed: str  # the original line(s), stripped
    added: str  # the mutated line(s), stripped


@dataclass(slots=True)
class ModuleScore:
    path: str
    total: int = 0
    killed: int = 0  # including timeouts
    timeouts: int = 0
    survivors: list[Survivor] = field(default_factory=list)
    message_only: list[Survivor] = field(default_factory=list)
    equivalent: list[tuple[Survivor, str]] = field(default_factory=list)
    untested: list[str] = field(default_factory=list)  # no tests, timeouts, suspicious
    not_run: int = 0  # left out of this run (mutmut run NAME… selects some)

    @property
    def counted(self) -> int:
        return self.total - len(self.message_only) - len(self.equivalent)

    @property
    def score(self) -> float:
        """Killed over the mutants that can change behaviour: the figure --min-score gates."""
        return 100.0 * self.killed / self.counted if self.counted else 100.0

    @property
    def raw_score(self) -> float:
        return 100.0 * self.killed / self.total if self.total else 100.0

    @property
    def non_message_score(self) -> float:
        """Killed over every mutant but the message-only ones (equivalents still count)."""
        base = self.total - len(self.message_only)
        return 100.0 * self.killed / base if base else 100.0


def function_of(mutant_name: str) -> str:
    return mutant_name.rsplit("__mutmut_", 1)[0]


def changed_lines(diff: str) -> tuple[str, str]:
    removed = [line[1:].strip() for line in diff.splitlines() if line.startswith("-")]
    added = [line[1:].strip() for line in diff.splitlines() if line.startswith("+")]
    removed = [line for line in removed if not line.startswith("--")]
    added = [line for line in added if not line.startswith("++")]
    return "\n".join(removed), "\n".join(added)


def _tokens(source: str) -> list[tuple[int, str]]:
    try:
        return [
            (tok.type, tok.string)
            for tok in tokenize.generate_tokens(io.StringIO(source + "\n").readline)
            if tok.type
            not in (
                tokenize.NL,
                tokenize.NEWLINE,
                tokenize.INDENT,
                tokenize.DEDENT,
                tokenize.ENDMARKER,
            )
        ]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return []


def _without_trailing_comma(tokens: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return tokens[:-1] if tokens and tokens[-1] == (tokenize.OP, ",") else tokens


def is_message_only(removed: str, added: str) -> bool:
    """Only string literals differ, and each differing original is prose (has a space).

    A message written as several adjacent literals (over lines) and replaced whole by
    None counts too: every removed token is a literal and one of them is prose.
    """
    before, after = _tokens(removed), _tokens(added)
    pieces, replacement = _without_trailing_comma(before), _without_trailing_comma(after)
    if (
        len(pieces) > 1
        and replacement == [(tokenize.NAME, "None")]
        and all(kind == tokenize.STRING for kind, _ in pieces)
        and any(" " in text for _, text in pieces)
    ):
        return True
    if not before or len(before) != len(after):
        return False
    differing = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    return bool(differing) and all(
        a[0] == tokenize.STRING and " " in a[1] and (b[0] == tokenize.STRING or b[1] == "None")
        for a, b in differing
    )


def load_equivalents(path: Path = EQUIVALENTS) -> list[dict[str, str]]:
    if not path.exists():
        return []
    entries: list[dict[str, str]] = tomllib.loads(path.read_text()).get("equivalent", [])
    for entry in entries:
        missing = {"function", "mutated", "reason"} - entry.keys()
        if missing:
            raise SystemExit(f"{path}: an entry lacks {sorted(missing)}: {entry}")
    return entries


def equivalence_reason(survivor: Survivor, entries: list[dict[str, str]]) -> str | None:
    for entry in entries:
        if entry["function"] == survivor.function and entry["mutated"].strip() == survivor.added:
            return entry["reason"]
    return None


def collect() -> list[ModuleScore]:
    """Read mutmut's verdicts (run from the project root, after `mutmut run`)."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code
    from mutmut.utils.file_utils import walk_mutatable_files

    entries = load_equivalents()
    scores: list[ModuleScore] = []
    for path in sorted(walk_mutatable_files()):
        data = SourceFileMutationData(path=path)
        data.load()
        if not data.exit_code_by_key:
            continue
        module = ModuleScore(str(path))
        for name, exit_code in sorted(data.exit_code_by_key.items()):
            status = status_by_exit_code[exit_code]
            if status == "not checked":
                module.not_run += 1
                continue
            module.total += 1
            if status in ("killed", "caught by type check", "timeout"):
                module.killed += 1
                module.timeouts += status == "timeout"
                continue
            if status != "survived":
                module.untested.append(f"{name}: {status}")
                continue
            removed, added = changed_lines(get_diff_for_mutant(name, path=path))
            survivor = Survivor(name, function_of(name), removed, added)
            reason = equivalence_reason(survivor, entries)
            if reason is not None:
                module.equivalent.append((survivor, reason))
            elif is_message_only(removed, added):
                module.message_only.append(survivor)
            else:
                module.survivors.append(survivor)
        scores.append(module)
    return scores


def render(scores: list[ModuleScore]) -> str:
    out = [
        "# Mutation report",
        "",
        "Scores: raw is killed / mutants; non-message leaves out message-only survivors;",
        "score also leaves out the equivalent ones (the figure `--min-score` gates).",
        "",
        "| module | mutants | killed (timeout) | survived | message-only | equivalent "
        "| raw | non-message | score |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in scores:
        if not m.total:
            out.append(f"| {m.path} | not run | | | | | | | |")
            continue
        survived = len(m.survivors) + len(m.untested) + len(m.message_only) + len(m.equivalent)
        out.append(
            f"| {m.path} | {m.total} | {m.killed} ({m.timeouts}) | {survived} "
            f"| {len(m.message_only)} | {len(m.equivalent)} | {m.raw_score:.1f} % "
            f"| {m.non_message_score:.1f} % | {m.score:.1f} % |"
        )
    for m in scores:
        if not (m.survivors or m.untested or m.equivalent):
            continue
        out += ["", f"## {m.path}", ""]
        for s in m.survivors:
            out += [f"- **survived** `{s.name}`", f"  - `{s.removed}` → `{s.added}`"]
        out += [f"- **not decided** {line}" for line in m.untested]
        for s, reason in m.equivalent:
            out += [f"- equivalent `{s.name}`: `{s.added}` — {reason}"]
    return "\n".join(out) + "\n"


def stale_equivalents(scores: list[ModuleScore]) -> list[dict[str, str]]:
    used = {(s.function, s.added) for m in scores for s, _ in m.equivalent}
    return [e for e in load_equivalents() if (e["function"], e["mutated"].strip()) not in used]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-score", type=float, default=0.0, help="fail under this score")
    args = parser.parse_args(argv)
    scores = collect()
    if not scores:
        print("No mutmut results under mutants/: run `make mutation` first.", file=sys.stderr)
        return 1
    text = render(scores)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text)
    print(text.split("\n\n## ", 1)[0])
    for entry in stale_equivalents(scores):
        print(f"note: equivalent entry no longer matches a survivor: {entry['function']}")
    low = [m.path for m in scores if m.total and m.score < args.min_score]
    print(f"Full list of survivors: {REPORT}")
    if low:
        print(f"Under {args.min_score} %: {', '.join(low)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
