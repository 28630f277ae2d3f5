"""The study pipeline, from config to report: one module per stage plus what the stages share
(docs/study.md lists every module with its one job, in one sentence each)."""
