"""Where answers are kept: the store interface with its in-process and Redis backends, and the L1 in front."""
