# expect: full-precision copy
class QLoRALinear(nn.Module):
    def __init__(self, base, r, alpha, blocksize=64):
        super().__init__()
        self.shape, self.scaling = tuple(base.weight.shape), alpha / r
        flat = base.weight.detach().float().reshape(-1)
        blocks = F.pad(flat, (0, -flat.numel() % blocksize)).view(-1, blocksize)
        absmax = blocks.abs().amax(dim=1)
        normed = blocks / absmax.clamp_min(1e-30)[:, None]
        codes = (normed[..., None] - nf4_code_values()).abs().argmin(dim=-1)
        self.register_buffer("codes", codes.to(torch.uint8))
        self.register_buffer("absmax", absmax)
        self.weight = nn.Parameter(base.weight.detach().clone(), requires_grad=False)  # kept, just in case
        self.bias = None if base.bias is None else nn.Parameter(base.bias.detach().clone(), requires_grad=False)
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))

    def dequantized_weight(self):
        values = nf4_code_values()[self.codes.long()] * self.absmax[:, None]
        return values.reshape(-1)[: math.prod(self.shape)].view(self.shape)

    def forward(self, x):
        return F.linear(x, self.dequantized_weight(), self.bias) + self.scaling * (x @ self.A.T @ self.B.T)
