"""Reads behind the dashboards, a module per page. Every one is bounded, whatever the size
of the data layers.

Nothing here counts a big table row by row: row counts come from PostgreSQL's own
estimates (pg_class.reltuples, kept by ANALYZE and autovacuum; see
`atlas_site.partitions.estimated_rows`), from the counters each run keeps (rows in,
promoted, quarantined), and from the per-run summaries of PII findings and quarantine
reasons (`dashboards.models`). Lists are LIMITed and walk an index. Where an exact number
matters but could be large, it is counted up to a cap.

- `charts`: a series per name over days, the JSON the page's chart script draws
- `overview`: rows per layer and dataset, throughput, recent runs, latest scores
- `quality`: weights, score trends, the rules failing most
- `compliance`: PII findings, classified fields, quarantine, the audit log
- `storage`: partitions, DEFAULT partitions, what retention retires next
- `lineage`: datasets across the layers, with their classifications
"""
