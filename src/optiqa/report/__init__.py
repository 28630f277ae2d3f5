"""Rendering: a study's result rows as one self-contained HTML file, Markdown and CSV tables.

- :mod:`optiqa.report.study`: the whole study report from typed inputs (:class:`~optiqa.report.
  study.StudyReport` in, a document out), with the introduction and the evaluator table.
- :mod:`optiqa.report.document`: the document model (headings, paragraphs, tables, figures)
  written as HTML, Markdown and CSV; nothing in it knows about studies.
- :mod:`optiqa.report.figures`: the figures (matplotlib, Agg), each a function of plain data.
- :mod:`optiqa.report.analysis`: the sections written from the analysis' typed rows
  (:class:`optiqa.stats.rows.Analysis`, read by attribute, never by string keys).
- :mod:`optiqa.report.human`: the human-judgment section (:class:`optiqa.stats.rows.Human`).
- :mod:`optiqa.report.sections`: the other sections (rehearsal, IQA tables, transfer, recovery,
  training curves).
- :mod:`optiqa.report.visual`: the crops of every model side by side.

A workflow-layer package that imports nothing from :mod:`optiqa.study` (the study's report stage
gathers the inputs and calls it, never the other way round).
"""
