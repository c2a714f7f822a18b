"""The storage objects tasks refer to, as administrators manage them.

One module per concept: `containers` (and their privileges), `nas` (NAS and shares),
`cloud` (connectors and buckets), `pools` (and their members), `tapes` (libraries,
drives, cartridges), plus `jobs` (the short checks answered as Nodeum active jobs) and
`common` (lookup, value limits, names in the one namespace).
"""
