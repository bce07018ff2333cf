# expect: B should start at zero
class LoRALayer(nn.Module):
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.scaling = base, alpha / r
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        self.B = nn.Parameter(torch.empty(base.out_features, r))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        nn.init.kaiming_uniform_(
            self.B, a=math.sqrt(5)
        )  # B random too: the model no longer starts as the pretrained one

    def forward(self, x):
        return self.base(x) + self.scaling * (x @ self.A.T @ self.B.T)
