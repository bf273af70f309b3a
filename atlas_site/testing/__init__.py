"""Helpers the test suites share (not imported by the running application)."""
