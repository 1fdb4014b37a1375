"""Collections read into a local corpus: JSONL files and Wikipedia XML dumps."""
