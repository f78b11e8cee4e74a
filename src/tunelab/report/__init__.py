"""The report: one self-contained HTML file per run, built only from the run directory and
its study (``tunelab report RUN``; ``tunelab run`` and ``tunelab train`` write it at the end).

Example::

    from tunelab.report import write_report

    write_report("runs/quickstart")  # runs/quickstart/report.html
"""

from tunelab.report.build import build_report, report_or_log, write_report

__all__ = ["build_report", "report_or_log", "write_report"]
