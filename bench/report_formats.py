"""What writing a report costs in each format, side by side in one run: CPU milliseconds per
report and the ratio to HTML (PDF is the HTML printed by WeasyPrint; Word is built by
python-docx), and the file size, for the demo's report (27 citations of 9 sources, ~780
words). Rendering happens once per report, after a run of minutes: the figure to watch is
that PDF stays around a second or two, not that it is many times HTML.

    python bench/report_formats.py [--repeat 3] [--budget-s 120]

Timed in CPU seconds of this process (time.process_time), so other load on the machine does
not distort it. Stops early (and says so) when the time budget runs out.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from rumination.jobs.demo import run_demo
from rumination.reports.render import FORMATS, check_format, report_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="renderings per format")
    parser.add_argument("--budget-s", type=float, default=120.0, help="hard wall-time budget")
    args = parser.parse_args()
    deadline = time.monotonic() + args.budget_s
    report = asyncio.run(run_demo())
    cpu_ms: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for fmt in FORMATS:
        check_format(fmt)
        report_bytes(report, fmt)  # warm: imports, fonts, templates
        spent, done = 0.0, 0
        for _ in range(args.repeat):
            if time.monotonic() > deadline:
                print(f"time budget of {args.budget_s:.0f} s spent; {fmt} timed {done} times")
                break
            started = time.process_time()
            sizes[fmt] = len(report_bytes(report, fmt))
            spent += time.process_time() - started
            done += 1
        if done:
            cpu_ms[fmt] = 1000 * spent / done
    html = cpu_ms.get("html")
    f = report.figures
    if f is not None:
        print(f"demo report: {f.citations} citations of {f.distinct_sources_cited} sources, "
              f"{f.words} words")
    print(f"{'format':8}{'CPU ms':>10}{'x html':>10}{'bytes':>10}")
    for fmt, ms in cpu_ms.items():
        ratio = f"{ms / html:.1f}" if html else "-"
        print(f"{fmt:8}{ms:10.1f}{ratio:>10}{sizes[fmt]:10d}")


if __name__ == "__main__":
    main()
