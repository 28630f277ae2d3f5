"""Rendering: a study's result rows as one self-contained HTML file, Markdown and CSV tables.

- :mod:`optiqa.report.document`: the document model (headings, paragraphs, tables, figures)
  written as HTML, Markdown and CSV; nothing in it knows about studies.
- :mod:`optiqa.report.figures`: the figures (matplotlib, Agg), each a function of plain data.
- :mod:`optiqa.report.analysis`: the sections written from the analysis' result rows.
- :mod:`optiqa.report.visual`: the crops of every model side by side.

A workflow-layer package that imports nothing from :mod:`optiqa.study` (the study's report stage
gathers the rows and calls it, never the other way round).
"""
