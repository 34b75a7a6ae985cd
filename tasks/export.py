"""考核结果导出: the file the secretaries' year-end evaluation (社区书记年底考核) uses, as CSV and XLSX."""
from __future__ import annotations

import csv
from pathlib import Path

from openpyxl import Workbook
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from models import assessment as core, policy
from models.db import home, session

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


@task(name="publish-results")
def publish_results(year: int) -> dict:
    """结果表（artifact assessment-<year>）、扣分说明和导出文件（CSV、XLSX）。单位多于 policy
    ``assessment.artifact_units`` 时，artifact 列出名次最前的单位，全部单位见导出文件。"""
    with session() as s:
        case = core.get_cycle(s, year)
        rows = core.results(s, case)  # with the secretaries stored at publication
    csv_path, xlsx_path = write_exports(rows, home() / "exports", year)
    ordered = sorted(rows, key=lambda r: (r["rank"], r["unit"]))
    limit = int(policy.get("assessment", "artifact_units", default=200))
    shown = ordered[:limit]
    rest = (f"（共 {len(ordered)} 个单位，此处列出名次最前的 {len(shown)} 个；全部单位见导出文件 "
            f"{csv_path.name}、{xlsx_path.name}）") if len(ordered) > len(shown) else ""
    create_table_artifact(
        [{"名次": r["rank"], "单位": r["unit_name"], "社区书记": r["secretary"], "总分": r["final"], "等次": r["grade"],
          "自动计分": r["auto"], "人工评分": r["manual"], "加分": r["bonus"], "一票否决": "是" if r["veto"] else "",
          "自评": r["self_assessment"]} for r in shown],
        key=f"assessment-{year}", description=f"{year}年度网络安全工作责任制检查考核结果{rest}")
    cutoff = core.cutoff_text(year, case.data["auto_cutoff"])
    md = [f"# {year}年度考核扣分说明", "",
          f"系统自动计分依据截至{cutoff}的全年工作记录（考核启动时按截至"
          f"{core.cutoff_text(year, case.data.get('auto_cutoff_at_start') or case.data['auto_cutoff'])}的记录计算，"
          "通报时重新计算；自评分和人工评分不变）。" + rest, ""]
    for r in shown:
        md.append(f"## {r['rank']}. {r['unit_name']}（{r['final']:g} 分，{r['grade']}）")
        md += [f"- {line}" for line in r["deduction_lines"]] or ["- 无扣分"]
        md += [f"- 一票否决：{v['item']}（{', '.join(v['records'])}）" for v in r["vetoes"]]
        md += [f"- 自动计分变动：{line}" for line in r["auto_changes"]]
        md.append("")
    create_markdown_artifact("\n".join(md), key=f"assessment-{year}-deductions", description="每个单位的扣分及依据")
    return {"csv": str(csv_path), "xlsx": str(xlsx_path), "units": len(rows)}
