"""Test suites (#4): scripted dialogs with expectations, run against the service."""
