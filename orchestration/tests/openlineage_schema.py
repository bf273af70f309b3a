"""The OpenLineage JSON schema that Atlas's events are checked against in the tests.

Neither openlineage-python nor any package on the registries ships the specification's
JSON files, and the tests run offline; so this is the specification's text for what Atlas
sends, written out as JSON Schema (draft 2020-12): the run event of spec 2-0-2 (its base
event, run, job, datasets and base facets), and each facet Atlas emits at the version
openlineage-python 1.54.0 names in its `_schemaURL` (SchemaDatasetFacet 1-2-0,
ColumnLineageDatasetFacet 1-2-0, DataQualityAssertionsDatasetFacet 1-1-0,
DataQualityMetricsInputDatasetFacet 1-0-3, InputStatistics 1-0-x, OutputStatistics 1-0-2,
ErrorMessageRunFacet 1-0-1, OwnershipJobFacet 1-0-1, JobTypeJobFacet 2-0-x). A facet is
checked against its own schema by the name it is given in an event.
"""

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker

STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
URI = {"type": "string", "format": "uri"}

BASE_FACET = {
    "type": "object",
    "properties": {"_producer": URI, "_schemaURL": URI, "_deleted": {"type": "boolean"}},
    "required": ["_producer", "_schemaURL"],
    "additionalProperties": True,
}


def facet(properties: dict[str, Any], required: list[str], defs: dict | None = None) -> dict:
    schema: dict[str, Any] = {
        "allOf": [
            BASE_FACET,
            {"type": "object", "properties": properties, "required": required},
        ]
    }
    if defs:
        schema["$defs"] = defs
    return schema


TRANSFORMATION = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["DIRECT", "INDIRECT"]},
        "subtype": STRING,
        "description": STRING,
        "masking": {"type": "boolean"},
    },
    "required": ["type"],
}
INPUT_FIELD = {
    "type": "object",
    "properties": {
        "namespace": STRING,
        "name": STRING,
        "field": STRING,
        "transformations": {"type": "array", "items": TRANSFORMATION},
    },
    "required": ["namespace", "name", "field"],
}
SCHEMA_FIELD = {
    "type": "object",
    "properties": {
        "name": STRING,
        "type": STRING,
        "description": STRING,
        "ordinal_position": {"type": "integer", "minimum": 1},
        "fields": {"type": "array", "items": {"$ref": "#/$defs/field"}},
    },
    "required": ["name"],
}

FACETS: dict[str, dict] = {
    "schema": facet(
        {"fields": {"type": "array", "items": {"$ref": "#/$defs/field"}}},
        [],
        defs={"field": SCHEMA_FIELD},
    ),
    "columnLineage": facet(
        {
            "fields": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "inputFields": {"type": "array", "items": INPUT_FIELD},
                        "transformationDescription": STRING,
                        "transformationType": STRING,
                    },
                    "required": ["inputFields"],
                },
            },
            "dataset": {"type": "array", "items": INPUT_FIELD},
        },
        ["fields"],
    ),
    "dataQualityAssertions": facet(
        {
            "assertions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "assertion": STRING,
                        "success": {"type": "boolean"},
                        "column": STRING,
                        "severity": STRING,
                        "name": STRING,
                        "params": {"type": "object"},
                    },
                    "required": ["assertion", "success"],
                },
            }
        },
        ["assertions"],
    ),
    "dataQualityMetrics": facet(
        {
            "rowCount": INTEGER,
            "bytes": INTEGER,
            "fileCount": INTEGER,
            "columnMetrics": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "nullCount": INTEGER,
                        "distinctCount": INTEGER,
                        "sum": NUMBER,
                        "count": NUMBER,
                        "min": NUMBER,
                        "max": NUMBER,
                        "quantiles": {"type": "object", "additionalProperties": NUMBER},
                    },
                },
            },
        },
        ["columnMetrics"],
    ),
    "inputStatistics": facet({"rowCount": INTEGER, "size": INTEGER, "fileCount": INTEGER}, []),
    "outputStatistics": facet({"rowCount": INTEGER, "size": INTEGER, "fileCount": INTEGER}, []),
    "errorMessage": facet(
        {"message": STRING, "programmingLanguage": STRING, "stackTrace": STRING},
        ["message", "programmingLanguage"],
    ),
    "ownership": facet(
        {
            "owners": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": STRING, "type": STRING},
                    "required": ["name"],
                },
            }
        },
        [],
    ),
    "jobType": facet(
        {
            "processingType": {"type": "string", "enum": ["BATCH", "STREAMING", "SERVICE"]},
            "integration": STRING,
            "jobType": STRING,
        },
        ["processingType", "integration"],
    ),
}
# Where each facet's _schemaURL must point (its spec file).
FACET_SPECS = {
    "schema": "SchemaDatasetFacet.json",
    "columnLineage": "ColumnLineageDatasetFacet.json",
    "dataQualityAssertions": "DataQualityAssertionsDatasetFacet.json",
    "dataQualityMetrics": "DataQualityMetricsInputDatasetFacet.json",
    "inputStatistics": "InputStatisticsInputDatasetFacet.json",
    "outputStatistics": "OutputStatisticsOutputDatasetFacet.json",
    "errorMessage": "ErrorMessageRunFacet.json",
    "ownership": "OwnershipJobFacet.json",
    "jobType": "JobTypeJobFacet.json",
}

FACET_MAP = {"type": "object", "additionalProperties": {"$ref": "#/$defs/BaseFacet"}}
RUN_EVENT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {
        "BaseFacet": BASE_FACET,
        "Dataset": {
            "type": "object",
            "properties": {"namespace": STRING, "name": STRING, "facets": FACET_MAP},
            "required": ["namespace", "name"],
        },
    },
    "type": "object",
    "properties": {
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": URI,
        "schemaURL": URI,
        "eventType": {
            "type": "string",
            "enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"],
        },
        "run": {
            "type": "object",
            "properties": {"runId": {"type": "string", "format": "uuid"}, "facets": FACET_MAP},
            "required": ["runId"],
        },
        "job": {
            "type": "object",
            "properties": {"namespace": STRING, "name": STRING, "facets": FACET_MAP},
            "required": ["namespace", "name"],
        },
        "inputs": {
            "type": "array",
            "items": {
                "allOf": [
                    {"$ref": "#/$defs/Dataset"},
                    {"type": "object", "properties": {"inputFacets": FACET_MAP}},
                ]
            },
        },
        "outputs": {
            "type": "array",
            "items": {
                "allOf": [
                    {"$ref": "#/$defs/Dataset"},
                    {"type": "object", "properties": {"outputFacets": FACET_MAP}},
                ]
            },
        },
    },
    "required": ["eventTime", "producer", "schemaURL", "run", "job"],
}

formats = FormatChecker(formats=())


@formats.checks("uuid", raises=ValueError)
def _uuid(value: object) -> bool:
    return not isinstance(value, str) or str(uuid.UUID(value)) == value.lower()


@formats.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    # RFC 3339: a date, a time and an offset.
    return not isinstance(value, str) or (
        "T" in value.upper() and datetime.fromisoformat(value).tzinfo is not None
    )


@formats.checks("uri", raises=ValueError)
def _uri(value: object) -> bool:
    return not isinstance(value, str) or bool(urlsplit(value).scheme)


def problems(event: dict) -> list[str]:
    """What in the event breaks the schema, each facet by its own; empty when it is valid."""
    found = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in Draft202012Validator(RUN_EVENT, format_checker=formats).iter_errors(event)
    ]
    facet_maps = [
        ("run", (event.get("run") or {}).get("facets")),
        ("job", (event.get("job") or {}).get("facets")),
    ]
    for side in ("inputs", "outputs"):
        for index, dataset in enumerate(event.get(side) or []):
            facet_maps.append((f"{side}/{index}", dataset.get("facets")))
            extra = "inputFacets" if side == "inputs" else "outputFacets"
            facet_maps.append((f"{side}/{index}/{extra}", dataset.get(extra)))
    for where, facets in facet_maps:
        for name, body in (facets or {}).items():
            schema = FACETS.get(name)
            if schema is None:
                continue  # a custom facet: the base facet's schema, checked above
            validator = Draft202012Validator(schema, format_checker=formats)
            found += [
                f"{where}/{name}/{'/'.join(map(str, error.absolute_path))}: {error.message}"
                for error in validator.iter_errors(body)
            ]
            spec = FACET_SPECS[name]
            if f"/{spec}#" not in body.get("_schemaURL", ""):
                found.append(f"{where}/{name}: _schemaURL does not name {spec}")
    return found
