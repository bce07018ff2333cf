# expect: merges cross the chunks of pre_split
def train_byte_bpe(text, num_merges):
    """Runs BPE on the text's bytes as one sequence: merges learn 'e ' and ' t' across words."""
    words, freqs = [list(text.encode("utf-8"))], [1]
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
