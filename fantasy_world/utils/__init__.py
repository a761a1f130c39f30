"""Small shared helpers (config serialisation, device choice)."""
