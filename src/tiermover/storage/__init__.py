"""Storage backends: one interface (base.Backend) that every workflow is written against."""
