"""PII detection and masking: pure Python, used by the explore -> chart promotion."""
