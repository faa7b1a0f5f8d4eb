"""Training: SFT stages (next-token docid generation) and, later, the DDRO pairwise phase."""
