"""Reconciliation: do the venue's account, the journal, the risk book and execution agree?

`books`: positions compared per symbol, and the check a party runs at the start of a new
run. `audit`: the whole audit after a run (orders, fills, the journal's completeness) that
`grandmodel chaos` and the tests use. Import the modules themselves: the journal uses
`books`, and `audit` reads the journal.
"""
