"""The graded checks of each notebook's exercises, one module per notebook (ex01_attention, ...).

A test cell's visible part shows a hand-worked example and calls a property check from
here; its hidden part calls the full check. The code that computes the right answer, and
the catalogue of known mistakes, live here rather than in the student's copy.
"""
