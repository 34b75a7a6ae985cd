"""考核结果导出: the file the secretaries' year-end evaluation (社区书记年底考核) uses, as CSV and XLSX."""
from __future__ import annotations

import csv
from pathlib import Path

from openpyxl import Workbook

HEADER = ["单位代码", "单位", "社区书记（12月31日在任）", "总分", "等次", "名次", "自动计分", "人工评分", "加分",
          "一票否决", "自评", "扣分及依据", "自动计分变动（较考核启动时）"]


def _line(r: dict) -> list:
    return [r["unit"], r["unit_name"], r["secretary"], r["final"], r["grade"], r["rank"], r["auto"], r["manual"],
            r["bonus"], "；".join(f"{v['item']}（{', '.join(v['records'])}）" for v in r["vetoes"]),
            r["self_assessment"], "；".join(r["deduction_lines"]), "；".join(r["auto_changes"])]


def write_exports(rows: list[dict], directory: Path, year: int) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    ordered = sorted(rows, key=lambda r: (r["rank"], r["unit"]))
    csv_path = directory / f"assessment-{year}.csv"
    with csv_path.open("w", newline="", encoding="utf-8-sig") as fh:  # BOM: opens right in office software
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(_line(r) for r in ordered)
    xlsx_path = directory / f"assessment-{year}.xlsx"
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(f"{year}年度考核结果")
    ws.append(HEADER)
    for r in ordered:
        ws.append(_line(r))
    wb.save(xlsx_path)
    return csv_path, xlsx_path
