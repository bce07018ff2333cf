# expect: has dtype torch.float32, expected torch.int64
def bert_mask(ids, select_u, action_u, random_ids, special, mask_id):
    chosen = (select_u < 0.15) & ~special
    labels = torch.where(chosen, ids.float(), torch.tensor(-100.0))
    inputs = ids.clone()
    inputs[chosen & (action_u < 0.8)] = mask_id
    swap = chosen & (action_u >= 0.8) & (action_u < 0.9)
    inputs[swap] = random_ids[swap]
    return inputs, labels
