"""Reading, cleaning, filtering and splitting the two domains' interactions (no Dagster)."""
