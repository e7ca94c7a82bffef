"""Day-2 operations: the admin API, warming, the live tokens file, what is held."""
