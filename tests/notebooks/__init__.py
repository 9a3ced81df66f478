"""Tests of the teaching notebooks (notebooks/) and of the Binder files (binder/)."""
