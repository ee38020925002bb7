"""Reporting: the paper's numbers as data, tables of our runs beside them, the study report."""
