"""What the Metaflow flows call: step helpers, cards and the report."""

# The flag of every flow with cached steps (the training flow, and each flow `recops promote`
# writes): here, light to import, because the promote generator writes it out as source.
NO_CACHE_OPTION = "no-cache"
NO_CACHE_ATTRIBUTE = "no_cache"
NO_CACHE_HELP = "run every step; reuse nothing from earlier runs (also: RECOPS_CACHE=off)"
