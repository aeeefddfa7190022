"""``docs/findings.md`` as a template: generated blocks between markers, prose kept around them.

A block is the text between ``<!-- BEGIN generated:NAME -->`` and ``<!-- END generated:NAME -->``
(NAME: letters, digits, ``_``, ``-`` and ``.``, so a variant study ``placement_crossover.scale1``
has its own). ``render`` rewrites the blocks it is given and keeps everything else; a block the
file lacks gets its section: the top blocks (summary, published orderings, compute) before the
first section, a study's at the end.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from analysis.findings_catalogue import Study
from analysis.findings_md import md_table
from analysis.findings_tables import hms

BLOCK_RE = re.compile(r"<!-- BEGIN generated:(?P<name>\w[\w.-]*) -->\n(?P<body>.*?)"
                      r"<!-- END generated:(?P=name) -->", re.DOTALL)
INTRO = """# Findings

What vidarch's shipped studies show on the built-in synthetic tasks, with 95% confidence
intervals over seeds. Hand-written prose lives outside the generated blocks; the blocks between
`<!-- BEGIN generated:... -->` and `<!-- END generated:... -->` are rewritten from the results
database by

```bash
scripts/run_studies.sh   # runs (or resumes) every study into docs/findings/findings.db
make findings            # = python -m analysis.findings --db docs/findings/findings.db --out docs
```

which regenerates every figure (PNG, exported from the dashboard's plotly figures) and table
(markdown here, CSV in [findings/](findings/)).

"""
# The blocks at the top of the page, in order: (name, section heading).
TOP = (("summary", "Summary: which claims hold here"),
       ("orderings", "Published orderings side by side"),
       ("overview", "Compute"),
       ("stopper", "The plateau stopper, measured"))
HEADER = INTRO  # the page a first run starts from (the top sections are added by render)


def begin(name: str) -> str:
    """The marker that opens block ``name``."""
    return f"<!-- BEGIN generated:{name} -->"


def end(name: str) -> str:
    """The marker that closes block ``name``."""
    return f"<!-- END generated:{name} -->"


def block(name: str, body: str) -> str:
    """Block ``name`` holding ``body``, with its markers."""
    return f"{begin(name)}\n{body.rstrip()}\n{end(name)}"


def study_section(study: Study) -> str:
    """The template section of a study: heading, claim, a prose placeholder, the block."""
    return (f"## {study.title}\n\n*Claim under test.* {study.claim}\n\n"
            f"*What we find.* (to be written: which claim holds here, which does not, how sure "
            f"we are.)\n\n{block(study.name, '')}\n")


def check_markers(text: str) -> None:
    """Raise ``ValueError`` when a BEGIN/END marker has no partner."""
    begins = re.findall(r"<!-- BEGIN generated:(\w[\w.-]*) -->", text)
    ends = re.findall(r"<!-- END generated:(\w[\w.-]*) -->", text)
    found = {m.group("name") for m in BLOCK_RE.finditer(text)}
    for name in begins + ends:
        if name not in found or begins.count(name) != 1 or ends.count(name) != 1:
            raise ValueError(f"findings.md: marker 'generated:{name}' is unpaired or repeated; "
                             f"fix the file by hand (each block needs one BEGIN and one END)")


def _insert_top(text: str, sections: str) -> str:
    """``sections`` before the first ``## `` heading (at the end when there is none)."""
    match = re.search(r"^## ", text, re.MULTILINE)
    if match is None:
        return text.rstrip("\n") + "\n\n" + sections
    return text[:match.start()] + sections + "\n" + text[match.start():]


def render(text: str | None, blocks: dict[str, str], studies: Sequence[Study]) -> str:
    """``text`` with every block in ``blocks`` rewritten; missing sections added."""
    if text is None:
        text = HEADER
    check_markers(text)
    present = {m.group("name") for m in BLOCK_RE.finditer(text)}
    missing_top = [(n, h) for n, h in TOP if n not in present and n in blocks]
    if missing_top:
        text = _insert_top(text, "".join(f"## {h}\n\n{block(n, '')}\n\n" for n, h in missing_top))
    for study in studies:
        if study.name not in present and study.name in blocks:
            text = text.rstrip("\n") + "\n\n" + study_section(study)

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in blocks:
            return match.group(0)
        return block(name, blocks[name])

    return BLOCK_RE.sub(replace, text)


def overview_markdown(computes: dict[str, dict[str, Any] | None]) -> str:
    """Compute of every shipped study in one table; a study not in the database: not yet run."""
    rows = []
    for name, c in computes.items():
        if c is None:
            rows.append([name, "not yet run", "", "", "", "", ""])
            continue
        rows.append([name, str(c["trials"]),
                     str(c["COMPLETE"]), str(c["PRUNED"] + c["FAILED"] + c["RUNNING"]),
                     hms(c["trial_s"]), hms(c["train_s"]), hms(c["span_s"])])
    return md_table(["study", "trials", "COMPLETE", "other", "trial time", "training time",
                     "wall clock"], rows, [False] + [True] * 6)


def missing_note(name: str, preset: str) -> str:
    """The block of a study the database does not hold yet."""
    run = f"python -m search.run study={preset}"
    return (f"*Not yet run: `{name}` is not in this database.* Run `{run}` (same `storage=`; "
            f"`scripts/run_studies.sh` runs every study) and then `make findings`.")
