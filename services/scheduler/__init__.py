"""The scheduler service. Publishes session life-cycle events on SESSIONS (calendar logic: issue 3)."""
