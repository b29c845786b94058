"""Detection: the pure detector, incident persistence, SLO burn rates and trace replay."""
