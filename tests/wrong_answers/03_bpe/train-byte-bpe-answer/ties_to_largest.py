# expect: ties went to the largest pair of ids
def train_byte_bpe(text, num_merges):
    """Picks the best pair with max over (count, pair): ties go to the largest ids, not the first occurrence."""
    chunk_counts = {}
    for chunk in pre_split(text):
        chunk_counts[chunk] = chunk_counts.get(chunk, 0) + 1
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    freqs = list(chunk_counts.values())
    merges = []
    for k in range(num_merges):
        counts = {}
        for symbols, freq in zip(words, freqs):
            for pair in zip(symbols, symbols[1:]):
                counts[pair] = counts.get(pair, 0) + freq
        if not counts:
            break
        _, (a, b) = max(zip(counts.values(), counts.keys()))
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
