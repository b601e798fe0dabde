"""The route table's matching rules as unanchored regexes, for the rendered nginx maps.

Each regex is valid for PCRE and Python's `re` and accepts exactly what the edge accepts in
Python: repository globs (`table.glob_matches`), organisations, and `Match.matches`.
"""

from __future__ import annotations

import re

from wharf.edge.table import Match


def glob_regex(glob: str) -> str:
    """An unanchored regex (valid for PCRE and Python's `re`) that matches exactly the
    repositories `table.glob_matches(glob, ...)` accepts: components are matched one by one
    with fnmatch rules, so nothing in a component may match `/`."""
    return "/".join(_component_regex(part) for part in glob.split("/"))


def _component_regex(pattern: str) -> str:
    # Mirrors CPython's fnmatch.translate, emitting `[^/]` where it emits `.`.
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "*":
            if not out or out[-1] != "[^/]*":
                out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            # A leading `!` negates and a `]` right after `[` or `[!` is a member.
            j = i + (pattern[i : i + 1] == "!")
            j = pattern.find("]", j + (pattern[j : j + 1] == "]"))
            if j < 0:
                out.append(r"\[")  # never closed: a literal `[`
            else:
                out.append(_class_regex(pattern, i, j))
                i = j + 1
        else:
            out.append(_literal(char))
    return "".join(out)


def _class_regex(pattern: str, start: int, end: int) -> str:
    """`pattern[start:end]` is a bracket expression's inside, as fnmatch reads it."""
    stuff = pattern[start:end]
    if "-" not in stuff:
        chunks = [stuff]
    else:
        # fnmatch splits at range hyphens and drops ranges that run backwards.
        chunks = []
        i = start
        k = start + 2 if pattern[start] == "!" else start + 1
        while (k := pattern.find("-", k, end)) >= 0:
            chunks.append(pattern[i:k])
            i, k = k + 1, k + 3
        if tail := pattern[i:end]:
            chunks.append(tail)
        else:
            chunks[-1] += "-"
        for k in range(len(chunks) - 1, 0, -1):
            if chunks[k - 1][-1] > chunks[k][0]:
                chunks[k - 1] = chunks[k - 1][:-1] + chunks[k][1:]
                del chunks[k]
    if not "-".join(chunks):
        return "(?!)"  # an empty set: never matches
    negated = chunks[0].startswith("!")
    if negated:
        chunks[0] = chunks[0][1:]
        if not "".join(chunks):
            return "[^/]"  # `[!]`: any one character of the component
    body = "-".join("".join(_literal(c) for c in chunk) for chunk in chunks)
    # A range such as `.-0` spans `/`, which a component never contains.
    return f"[^/{body}]" if negated else f"(?!/)[{body}]"


def _literal(char: str) -> str:
    return char if char.isascii() and char.isalnum() else "\\" + char


def org_regex(organisations: tuple[str, ...]) -> str:
    """Unanchored: the repository's first component is one of `organisations`."""
    names = "|".join(re.escape(org) for org in organisations)
    return rf"(?:{names})(?:/(?s:.*))?"


def path_regex(match: Match) -> str:
    """Unanchored: `Match.matches` on `"<METHOD> <path>"` (the methods first)."""
    methods = "|".join(sorted(match.methods)) if match.methods else "[^ ]+"
    alternatives = [f"(?:{match.pattern})"] if match.pattern is not None else []
    for prefix in match.prefixes:
        if prefix.endswith("/"):
            # As `_under`: `/v2/` also covers `/v2` itself (and `/` the empty path, which
            # nginx never sees, kept to mirror the edge exactly).
            alternatives += [re.escape(prefix) + "(?s:.*)", re.escape(prefix.rstrip("/"))]
        else:
            alternatives.append(re.escape(prefix) + "(?:/(?s:.*))?")
    return f"(?:{methods}) (?:{'|'.join(alternatives) or '(?!)'})"
