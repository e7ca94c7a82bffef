"""One upstream call per question: in-process flights, the cross-replica lock and fill, wake-ups, background
refreshes (stale-while-revalidate and ahead of expiry)."""
