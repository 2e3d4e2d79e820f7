"""The offline `local` language provider: honest rule-based work, no model.

- `refine`: fillers, stutters, casing and terminal punctuation (rules in `mina.insights.refine`);
- `extract_tasks`: commitments by pattern, owners and due dates (`mina.insights.tasks`);
- `summarize`: extractive TF-IDF summary, decisions, open questions (`mina.insights.summary`).

Every function is pure and deterministic and returns a validated result model.
"""

from __future__ import annotations

from mina.insights.refine import refine
from mina.insights.summary import summarize
from mina.insights.tasks import extract_tasks

__all__ = ["extract_tasks", "refine", "summarize"]
