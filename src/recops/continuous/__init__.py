"""Continuous training: incoming data, drift, the retrain policy, the Prefect flow, schedules
and their status. Only ``flow`` and the schedule modules import Prefect."""
