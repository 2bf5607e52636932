"""The report: tables, figures and the paper's published numbers (pure formatting, no training)."""
