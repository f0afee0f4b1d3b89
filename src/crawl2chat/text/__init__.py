"""The text recipe: URL filter, extraction, language ID, quality filters, dedup, mix, PII."""
