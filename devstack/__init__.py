"""`make run`: the whole stack on one machine, from pip packages only."""
