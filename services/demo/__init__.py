"""The built-in demo origin: a real, looping live HLS stream, demo source pages and a calendar.

It is product code (the default source of ``slipstream up``, which needs no internet) and the
test fixture for every path that needs an origin.
"""
