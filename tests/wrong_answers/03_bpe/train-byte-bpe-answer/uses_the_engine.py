# expect: not allowed here
def train_byte_bpe(text, num_merges):
    """Section 7's shortcut: the course's incremental engine with first-occurrence ties."""
    counts = ByteLevelBPE().chunk_counts(text)
    ids = iter(range(256, 256 + num_merges))
    return incremental_merges(
        [list(c) for c in counts], list(counts.values()), num_merges, new_symbol=lambda a, b: next(ids)
    )
