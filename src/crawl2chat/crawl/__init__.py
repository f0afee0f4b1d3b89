"""The crawl side: a polite crawler, WARC sources, WARC reading and writing."""
