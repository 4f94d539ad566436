"""Scoring other identity methods' images (`idrift score`): manifest, ingestion, claims, the scored folder."""
