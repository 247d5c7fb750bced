"""E&L flows that land files through the landing contract."""
