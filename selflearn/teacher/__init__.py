"""The Teacher: metrics, judge, experiment specs, statistics and verdicts (#7)."""
