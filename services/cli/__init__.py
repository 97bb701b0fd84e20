"""The ``slipstream`` command: run the whole system on one machine, or one service of it."""
