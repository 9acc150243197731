"""The attribution rules of RULES.md as pure functions of plain data.

No I/O, no clock: every time is a parameter, every rule number lives in a policy
dataclass whose defaults are the handbook's, so replaying the topics gives the same
answers and a configuration change is a recompute.
"""
