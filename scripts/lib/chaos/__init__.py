"""Seeded fault schedules on the local cluster (scripts/chaos): workload, nemesis, checker."""
