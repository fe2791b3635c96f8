"""Workers: the pool (threads, heartbeat, wake-up) and the run of one task (claim → engine → manager)."""
