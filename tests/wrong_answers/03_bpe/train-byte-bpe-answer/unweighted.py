# expect: each distinct chunk counted once
def train_byte_bpe(text, num_merges):
    """Counts each distinct chunk once, forgetting how often it occurs."""
    chunk_counts = {}
    for chunk in pre_split(text):
        chunk_counts[chunk] = chunk_counts.get(chunk, 0) + 1
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    freqs = [1] * len(words)
    merges = []
    for k in range(num_merges):
        counts = {}
        for symbols, freq in zip(words, freqs):
            for pair in zip(symbols, symbols[1:]):
                counts[pair] = counts.get(pair, 0) + freq
        if not counts:
            break
        a, b = max(counts, key=counts.get)
        for j, symbols in enumerate(words):
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
                    out.append(256 + k)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            words[j] = out
        merges.append((a, b))
    return merges
