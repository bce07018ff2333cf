# expect: B (out_features, r)
class LoRALayer(nn.Module):
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.scaling = base, alpha / r
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.A = nn.Parameter(torch.zeros(base.out_features, r))  # shapes of A and B swapped
        self.B = nn.Parameter(torch.empty(r, base.in_features))
        nn.init.kaiming_uniform_(self.B, a=math.sqrt(5))

    def forward(self, x):
        return self.base(x) + self.scaling * (x @ self.B.T @ self.A.T)
