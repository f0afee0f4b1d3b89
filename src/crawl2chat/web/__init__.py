"""The web-data side: WARC input/output, HTML extraction, language ID, filters, dedup."""
