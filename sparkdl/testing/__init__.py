"""Test-only tools shipped with the package so that executors can unpickle them: fault
injection into the rank loop."""
