"""Beam jobs and data plumbing: teacher datasets, online episode logs, readers."""
