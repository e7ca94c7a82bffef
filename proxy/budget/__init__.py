"""The shared upstream budget: token buckets in process and in Redis, the gate, who pays, what each team spent."""
