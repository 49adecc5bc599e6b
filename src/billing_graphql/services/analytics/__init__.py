"""Revenue analytics: MRR, its movements, cash and receivables, computed in the database."""
