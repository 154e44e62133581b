"""Tests of trimq.actors."""
