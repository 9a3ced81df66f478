"""Tests of the streamnb core (Stream, fusion, buffers, concurrency, recovery, metrics)."""
