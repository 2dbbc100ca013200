"""What the Metaflow flows call: step helpers, cards and the report."""
