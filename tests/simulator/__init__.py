"""Tests of the QRS simulator (agent/simulator)."""
