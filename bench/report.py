"""The markdown report: one table per unit, ratios between servers, and rows against rows.

Every median column header names what it counts, and says "lower is better" where it is
(latency, memory); a ratio is always this server's median over the other's, so below 1 is
better in those tables. The header (machine, versions, each row's method) is in header.py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from bench.model import Cell, Figure, Scenario, Server

Cells = dict[tuple[str, str], Cell]


def ratio(a: Cell, b: Cell, key: str) -> float | None:
    """a/b of the medians, None when either side has no valid number to compare."""
    ma, mb = a.median(key), b.median(key)
    if ma is None or mb is None or a.errors or b.errors or not mb:
        return None
    return ma / mb


def fmt_ratio(a: Cell, b: Cell, key: str) -> str:
    value = ratio(a, b, key)
    return "—" if value is None else f"{value:.2f}"


def fmt_value(value: float | None, figure: Figure) -> str:
    return "—" if value is None else f"{value:,.{figure.decimals}f}"


def tables(servers: Sequence[Server], scenarios: Sequence[Scenario], cells: Cells) -> list[str]:
    """One markdown table per unit, in the order units first appear; blank lines between."""
    rows = [(sc, fig) for sc in scenarios for fig in sc.figures]
    lines: list[str] = []
    for unit in dict.fromkeys(fig.unit for _sc, fig in rows):
        if lines:
            lines.append("")
        group = [(sc, fig) for sc, fig in rows if fig.unit == unit]
        lines += unit_table(servers, group, cells)
        lines += unpinned_note(list(dict.fromkeys(sc for sc, _fig in group)))
    return lines


def unit_table(servers: Sequence[Server], rows: Sequence[tuple[Scenario, Figure]],
               cells: Cells) -> list[str]:
    unit = rows[0][1].unit
    better = ", lower is better" if rows[0][1].lower_is_better else ""
    # A ratio column only for servers with a figure in this table (not the ceiling beside
    # download rows, say); every server still gets its row, with why it has no figure.
    measured = [s for s in servers if any(cells[(sc.key, s.name)].series(fig.key)
                                          for sc, fig in rows)] or list(servers)
    head = ["scenario", "server", f"{unit} (median{better})", *(f"vs {s.name}" for s in measured),
            "spread", "rounds", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sc, fig in rows:
        name = f"{sc.name} {fig.label}".strip()
        reasons = {cells[(sc.key, sv.name)].skipped for sv in servers}
        if len(reasons) == 1 and "" not in reasons:
            # The row could not run at all (e.g. a load tool without the flag it needs).
            blank = ["—"] * (len(measured) + 3)
            lines.append("| " + " | ".join([name, "all", *blank, "skipped: " + reasons.pop()])
                         + " |")
            continue
        for sv in servers:
            cell = cells[(sc.key, sv.name)]
            ratios = [fmt_ratio(cell, cells[(sc.key, other.name)], fig.key) for other in measured]
            rounds = " / ".join(fmt_value(v, fig) for v in cell.series(fig.key)) or "—"
            row = [name, sv.name, fmt_value(cell.median(fig.key), fig), *ratios,
                   cell.spread(fig.key), rounds, note_for(cell)]
            lines.append("| " + " | ".join(row) + " |")
    return lines


def unpinned_note(scenarios: Sequence[Scenario]) -> list[str]:
    """Under a table with unpinned rows: what they may and may not be compared with."""
    unpinned = [sc for sc in scenarios if not sc.pinned]
    if not unpinned:
        return []
    keys = ", ".join(f"`{sc.key}` ({sc.workers} worker processes per server)" for sc in unpinned)
    return ["", f"Unpinned rows, {keys}: every server's processes and the load generator share "
                f"all {os.cpu_count()} cores, so the load generator takes CPU from the server. "
                "Compare their ratios between servers only, not their figures with the pinned "
                "rows'."]


def comparisons(servers: Sequence[Server], scenarios: Sequence[Scenario], cells: Cells,
                pairs: Sequence[tuple[str, str, str]]) -> list[str]:
    """A table of each server's row against its own reference row (e.g. log on / off), as a
    percentage of the first figure; only pairs whose two rows both ran."""
    keys = {sc.key: sc for sc in scenarios}
    wanted = [(a, b, what) for a, b, what in pairs if a in keys and b in keys]
    if not wanted:
        return []
    table = {(a, b, what): [ratio(cells[(a, sv.name)], cells[(b, sv.name)], keys[a].figures[0].key)
                            for sv in servers] for a, b, what in wanted}
    table = {pair: values for pair, values in table.items() if any(v is not None for v in values)}
    # Only the servers with at least one comparison (not the ceiling, say).
    columns = [i for i in range(len(servers)) if any(vs[i] is not None for vs in table.values())]
    if not columns:
        return []
    lines = ["", "| comparison | " + " | ".join(servers[i].name for i in columns) + " |",
             "|" + "---|" * (len(columns) + 1)]
    for (a, b, what), values in table.items():
        row = ["—" if values[i] is None else f"{values[i]:.0%}" for i in columns]
        lines.append(f"| {what} (`{a}` / `{b}`) | " + " | ".join(row) + " |")
    return lines


def one_line(reason: str) -> str:
    """First line of a failure plus the log's last line, which usually names the cause."""
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    text = lines[0] if len(lines) < 2 else f"{lines[0]} {lines[-1]}"
    return text.replace("|", "/")[:160]


def note_for(cell: Cell) -> str:
    if cell.errors:
        details = "; ".join(r.error_detail for r in cell.results if r.errors)
        return f"INVALID: {cell.errors} errors ({details})".replace("|", "/")
    if cell.skipped:
        return "skipped: " + cell.skipped
    notes = [cell.note]
    if cell.client_cpu is not None:
        notes.append(f"client CPU {cell.client_cpu:.0%}")
    if cell.server_cpu is not None:
        notes.append(cell.server_cpu.text())
    return "; ".join(n for n in notes if n).replace("|", "/")
