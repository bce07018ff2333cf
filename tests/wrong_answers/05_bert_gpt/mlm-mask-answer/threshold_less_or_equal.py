# expect: a threshold compared with <=
def bert_mask(ids, select_u, action_u, random_ids, special, mask_id):
    chosen = (select_u < 0.15) & ~special
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    inputs = ids.clone()
    inputs[chosen & (action_u <= 0.8)] = mask_id
    swap = chosen & (action_u > 0.8) & (action_u <= 0.9)
    inputs[swap] = random_ids[swap]
    return inputs, labels
