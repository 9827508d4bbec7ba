"""Compiled hot paths over flat arrays.

Every kernel here is private: the public functions in :mod:`dnuma.mm` validate
their input, call a kernel and wrap the result.  The tests compare each against
the plain-Python reference model in ``tests/naive.py``.
"""
