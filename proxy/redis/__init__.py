"""One Redis connection on any topology (standalone, Sentinel, Cluster), its URL, its pub/sub listener, its health."""
