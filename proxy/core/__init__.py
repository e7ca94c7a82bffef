"""Pure: the rules of the proxy, with no I/O. Time buckets, endpoints, questions and their keys, freshness, what to
do with what the cache holds, budget and series arithmetic, alignment checkpoints, the error tree."""
