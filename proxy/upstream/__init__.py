"""Braze: the HTTP client, the fetcher (retries, classification), remembered refusals, one question asked."""
