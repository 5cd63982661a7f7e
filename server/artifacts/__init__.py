"""Artifacts: the reports, bundles and receipts kept under contract paths (see ``store``)."""
