"""Execution's adapters: the SQL of each aggregate and the rows they map.

The use cases (`services/execution/app`) decide which statements form one
transaction; these modules only hold the statements. Every money column is
NUMERIC and comes back as Decimal.
"""
