"""Windows answered from buckets: the series store, alignment with Braze's labels, the window answerer."""
