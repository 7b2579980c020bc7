#!/usr/bin/env python3
"""Fails when the repository's documentation points at something that is not there.

- Every relative link in a tracked markdown file must name a tracked file or
  folder, and a `#fragment` a heading of the markdown file it points into.
- Every repository path cited in a tracked file (source comments, scripts,
  configuration, docs), such as `docs/REFERENCE.md` or `src/policy/stage.rs`,
  must exist.
- Nothing may cite a path outside the repository (`../shared/…`) or a design
  document that is not part of it (`DESIGN.md`).

Run from anywhere: `python3 scripts/check-docs.py`. Prints each problem as
`file:line: problem` and exits 1 when there is any.
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
# A path into the repository, as prose and comments cite them.
CITED = re.compile(
    r"(?<![\w./-])((?:docs|src|tests|bench|scripts|migrations|config|fuzz|templates|ops|\.ci)"
    r"/[A-Za-z0-9_./-]*[A-Za-z0-9_/])"
)
OUTSIDE = re.compile(r"\.\./shared|\bDESIGN\.md\b")
# Placeholders in cited paths (`migrations/sqlite/NNNN_what.sql`).
PLACEHOLDER = re.compile(r"NNNN|<|\*|…")
TEXT_SUFFIXES = (".md", ".rs", ".toml", ".sh", ".py", ".yml", ".yaml", ".html", ".css", ".sql")


def tracked_files():
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return [f for f in out.splitlines() if os.path.exists(os.path.join(ROOT, f))]


def slug(heading):
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path, cache={}):
    if path not in cache:
        found = set()
        in_code = False
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("```"):
                    in_code = not in_code
                elif not in_code and line.startswith("#"):
                    found.add(slug(line.lstrip("#")))
        cache[path] = found
    return cache[path]


def check_link(source, target):
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
        return None
    path, _, fragment = target.partition("#")
    here = os.path.dirname(os.path.join(ROOT, source))
    resolved = os.path.normpath(os.path.join(here, path)) if path else os.path.join(ROOT, source)
    if not resolved.startswith(ROOT + os.sep) and resolved != ROOT:
        return f"link leaves the repository: {target}"
    if not os.path.exists(resolved):
        return f"link to a missing file: {target}"
    if fragment and resolved.endswith(".md") and fragment not in anchors(resolved):
        return f"link to a missing heading: {target}"
    return None


def prose_of(name, line):
    """The part of a line that is prose: all of a markdown line, the comment of a code line."""
    if name.endswith(".md"):
        return line
    marker = "//" if name.endswith((".rs", ".css")) else "--" if name.endswith(".sql") else "#"
    if name.endswith(".html"):
        return line
    at = line.find(marker)
    return line[at:] if at >= 0 else ""


def ignored(path):
    """Paths git ignores (build output, fuzzing artifacts) exist only after a run."""
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0


def main():
    files = tracked_files()
    problems = []
    for name in files:
        if not name.endswith(TEXT_SUFFIXES) and os.path.basename(name) not in ("Dockerfile", "run"):
            continue
        if name == "scripts/check-docs.py":
            continue
        with open(os.path.join(ROOT, name), encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
        in_code = False
        for number, line in enumerate(lines, 1):
            where = f"{name}:{number}"
            if OUTSIDE.search(line):
                problems.append(f"{where}: cites a document outside the repository: {OUTSIDE.search(line).group(0)}")
            if name.endswith(".md"):
                if line.startswith("```"):
                    in_code = not in_code
                if not in_code:
                    for match in LINK.finditer(line):
                        target = match.group(1) or match.group(2)
                        problem = check_link(name, target)
                        if problem:
                            problems.append(f"{where}: {problem}")
            prose = prose_of(name, line)
            for match in CITED.finditer(prose):
                cited = match.group(1).rstrip(".")
                if PLACEHOLDER.search(prose[match.start():match.end() + 1]):
                    continue
                if not os.path.exists(os.path.join(ROOT, cited)) and not ignored(cited):
                    problems.append(f"{where}: cites a path that does not exist: {cited}")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) in the documentation's links and cited paths", file=sys.stderr)
        return 1
    print(f"documentation links and cited paths: {len(files)} files checked, all resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
