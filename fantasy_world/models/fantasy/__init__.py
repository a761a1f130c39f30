"""FantasyWorld's geometry branch: VGGT-style blocks with time AdaLN, heads and pose encoding."""
