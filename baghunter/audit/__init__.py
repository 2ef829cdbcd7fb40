"""The listing audit: find listings whose photo disagrees with what the seller wrote."""
