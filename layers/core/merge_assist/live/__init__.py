"""The dashboard's live feed."""
