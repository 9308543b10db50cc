"""How runs are driven, above the domains: the one-run refresh of every changed repository
(git extraction, merges, commit embeddings and change terms together) and the recovery of
runs whose process died. Domains never import this package."""
