"""PII detection and masking: pure Python, used by the explore -> chart promotion.

patterns = load_patterns()              # enabled PiiPattern rows, cached per version
for match in scan_value(text, patterns, field_name="email"):
    excerpt = masked_excerpt(text, match.start, match.end, pii_type=match.pii_type)
protected = mask(value, level.masking)  # a classification level's masking rule
"""

from governance.compliance.pii.masking import mask, masked_excerpt
from governance.compliance.pii.scanner import (
    CompiledPattern,
    InvalidPatternError,
    Match,
    PatternSet,
    compile_patterns,
    load_patterns,
    payload_texts,
    scan_record,
    scan_value,
    scan_values,
    shipped_patterns,
)

__all__ = [
    "CompiledPattern",
    "InvalidPatternError",
    "Match",
    "PatternSet",
    "compile_patterns",
    "load_patterns",
    "mask",
    "masked_excerpt",
    "payload_texts",
    "scan_record",
    "scan_value",
    "scan_values",
    "shipped_patterns",
]
