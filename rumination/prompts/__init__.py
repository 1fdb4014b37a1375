"""Jinja2 templates for everything the model reads (package data; see rumination.templates)."""
