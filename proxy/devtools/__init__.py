"""Generators used at development time: the settings reference and the OpenAPI description."""
