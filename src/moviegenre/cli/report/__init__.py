"""A Markdown review of what a change did: macro ROC-AUC against a base revision, judged against
the evaluation's own noise, the params that changed, and base and head figures side by side.

CI posts it on pull requests (.github/workflows/pr-metrics.yml). A reviewer asks "did this change
help?", so the headline is each branch's val and test macro ROC-AUC, base -> head, and whether
the difference is larger than the noise of a few hundred scored movies (the rule is in
``noise.NOISE_RULE`` and docs/sharing.md "Pull request reviews"). Timings and counts, which move on every
run and every machine, are folded into <details>.

Head is the workspace; base is read at its git revision through DVC's file system, so a
DVC-cached file (the base's predictions) comes from the cache or the remote like `dvc get`.

One concern a module, in the order the report is made:

- ``revisions``: the files of a revision (workspace, git revision through DVC, a folder), dvc.lock
- ``scores``: which branches there are and their macro ROC-AUC with its interval, per split
- ``noise``: the noise rule, a verdict per branch and split (pure)
- ``pairing``: both revisions' predictions lined up for the paired bootstrap
  (``moviegenre.evaluation.paired_bootstrap``)
- ``markdown``: how values, Δs and verdicts are written, folded tables, wrapped paragraphs
- ``machines``: what differs between the machines base and head ran on, said once, and which
  branches train with CPU-dependent kernels (marked where their Δ is shown)
- ``tables``: the headline, noise bands, timings, counts, params and metrics-diff tables
- ``figures``: base and head figures side by side, linked relative to the report
- ``build``: ``build_report``, which puts them together
"""

from __future__ import annotations

from moviegenre.cli.report.build import build_report

__all__ = ["build_report"]
