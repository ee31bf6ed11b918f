"""nzip-ray: nzip's work spread over a Ray cluster, one task per range of whole lockstep groups.

Every range becomes one nzip archive (a member); members of consecutive ranges, concatenated,
are one valid archive of the whole file (formats/NZIP.md, "Members"), so the output decodes with
plain `nzip -d` on any machine, no Ray needed.
"""
