"""Every setting, its default and validation, read from the environment once, at start-up."""
