"""Whether the cited sources say what the report says: citations, statements, evidence, judges,
the check, verify, scoring and the report's figures."""
