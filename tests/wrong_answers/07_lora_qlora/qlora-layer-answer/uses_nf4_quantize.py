# expect: not allowed here
class QLoRALinear(nn.Module):
    def __init__(self, base, r, alpha, blocksize=64):
        super().__init__()
        self.shape, self.scaling = tuple(base.weight.shape), alpha / r
        codes, absmax = nf4_quantize(base.weight.detach(), blocksize)  # the course's function, not yours
        self.register_buffer("codes", codes.view(-1, blocksize))
        self.register_buffer("absmax", absmax)
        self.bias = None if base.bias is None else nn.Parameter(base.bias.detach().clone(), requires_grad=False)
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))

    def dequantized_weight(self):
        return nf4_dequantize(self.codes.reshape(-1), self.absmax, self.shape)

    def forward(self, x):
        return F.linear(x, self.dequantized_weight(), self.bias) + self.scaling * (x @ self.A.T @ self.B.T)
