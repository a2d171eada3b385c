"""Just enough of KQL to check what a query reads: its source tables, the names it filters on, the
customDimensions/customMeasurements keys it uses, and the string literals it compares anything with.
Written for the queries of infra/ (one style), not for KQL at large.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
# lhs == "x", lhs != "x", lhs =~ "x"; lhs may be a column or a call such as tostring(customDimensions.why)
COMPARE = re.compile(r"(?P<lhs>[\w.()]+)\s*(?:==|!=|=~)\s*(?P<lit>\"[^\"]*\")")
IN_LIST = re.compile(r"(?P<lhs>[\w.()]+)\s+!?in~?\s*\((?P<items>\s*\"[^)]*)\)")
STARTS = re.compile(r"(?P<lhs>[\w.()]+)\s+startswith\s+(?P<lit>\"[^\"]*\")")


@dataclass
class Query:
    text: str
    tables: set[str] = field(default_factory=set)  # tabular sources, let-bound names excluded
    lets: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)  # literals compared with the `name` column
    dimensions: set[str] = field(default_factory=set)
    measurements: set[str] = field(default_factory=set)
    compared: dict[str, set[str]] = field(default_factory=dict)  # other lhs -> literals (prefixes end in *)


def _literal(text: str) -> str:
    return text[1:-1]


def parse(text: str) -> Query:
    query = Query(text)
    bare = STRING.sub('""', text)  # identifiers only: nothing inside a string literal counts
    sources: set[str] = set()
    for statement in (s.strip() for s in bare.split(";")):
        if not statement:
            continue
        let = re.match(rf"let\s+({IDENTIFIER})\s*=\s*(.*)", statement, re.DOTALL)
        if let:
            query.lets.add(let.group(1))
        expression = let.group(2).strip() if let else statement
        first = re.match(rf"\(?\s*({IDENTIFIER})", expression)
        assert first, f"cannot read the start of {expression!r}"
        if first.group(1) != "union":
            sources.add(first.group(1))
    for union in re.finditer(
        rf"\bunion\b((?:\s+{IDENTIFIER}\s*=\s*{IDENTIFIER})*)\s+([\w\s,]+?)\s*(?=\||$)", bare
    ):
        sources |= {t.strip() for t in union.group(2).split(",") if t.strip()}
    sources |= set(re.findall(rf"\(\s*({IDENTIFIER})\s*\|", bare))  # (subquery | ...)
    sources |= set(re.findall(rf"\b(?:join|lookup)\b(?:\s+kind\s*=\s*\w+)?\s+\(?\s*({IDENTIFIER})", bare))
    query.tables = sources - query.lets

    query.dimensions = set(re.findall(rf"\bcustomDimensions\.({IDENTIFIER})", bare))
    query.dimensions |= {_literal(k) for k in re.findall(r"\bcustomDimensions\[(\"[^\"]*\"|'[^']*')\]", text)}
    query.measurements = set(re.findall(rf"\bcustomMeasurements\.({IDENTIFIER})", bare))

    def add(lhs: str, literal: str) -> None:
        if "{" in literal:  # a workbook parameter, e.g. "{CorrelationId}"
            return
        while lhs.count("(") > lhs.count(")"):  # countif(name == ...): the argument, not the call
            lhs = lhs[lhs.index("(") + 1 :]
        if lhs == "name":
            query.names.add(literal)
        else:
            query.compared.setdefault(lhs, set()).add(literal)

    for match in COMPARE.finditer(text):
        add(match.group("lhs"), _literal(match.group("lit")))
    for match in IN_LIST.finditer(text):
        for item in STRING.findall(match.group("items")):
            add(match.group("lhs"), _literal(item))
    for match in STARTS.finditer(text):
        add(match.group("lhs"), _literal(match.group("lit")) + "*")
    return query
