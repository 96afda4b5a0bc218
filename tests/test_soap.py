"""ncodec.models.soap: Adam where it does not rotate, and better than Adam where it does."""

import torch

from ncodec.models.soap import Soap


def test_one_dimensional_tensors_take_adam_steps():
    torch.manual_seed(0)
    a = torch.randn(7, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    soap, adam = Soap([a], lr=0.1, betas=(0.9, 0.99)), torch.optim.Adam([b], lr=0.1, betas=(0.9, 0.99))
    target = torch.randn(7)
    ((a - target) ** 2).sum().backward()
    soap.step()  # SOAP's first step only gathers statistics
    assert torch.equal(a, b)
    for _ in range(20):
        for p, opt in ((a, soap), (b, adam)):
            opt.zero_grad()
            ((p - target) ** 2).sum().backward()
            opt.step()
    assert torch.allclose(a, b, atol=1e-6)


def _run(optimizer, w0: torch.Tensor, loss_of, steps: int = 40) -> torch.Tensor:
    w = w0.clone().requires_grad_(True)
    opt = optimizer(w)
    for step in range(steps):
        opt.zero_grad()
        loss_of(w, step).backward()
        opt.step()
    return w.detach()


def test_steps_turn_with_the_problem():
    """SOAP's steps follow a rotation of the parameter space (``W' = U W V^T`` with orthogonal
    ``U, V``): its bases turn with the gradients' statistics. Adam's do not (the check below
    fails for it), so this pins the rotations' code. Where the statistics are degenerate (a
    zero eigenvalue: any basis of its eigenspace will do) the steps do not follow, so the
    matrix is square (its first gradient has full rank) and the batches change (bases
    gathered from the very gradient they rotate make it diagonal, its zeros rounding noise
    that Adam's normalisation would blow up)."""
    torch.manual_seed(0)
    x, y = torch.randn(640, 5) @ torch.randn(5, 5), torch.randn(640, 5)
    u, _ = torch.linalg.qr(torch.randn(5, 5))
    v, _ = torch.linalg.qr(torch.randn(5, 5))
    w0 = torch.randn(5, 5) * 0.1

    def loss(w, step=None):  # a minibatch of 16 rows per step
        rows = slice(None) if step is None else slice(16 * (step % 40), 16 * (step % 40) + 16)
        return ((x[rows] @ w - y[rows]) ** 2).mean()

    def turned_loss(w, step):  # the same problem in the turned coordinates
        return loss(u.T @ w @ v, step)

    for name, optimizer in (("soap", lambda w: Soap([w], lr=0.02, every=5)),
                            ("adam", lambda w: torch.optim.Adam([w], lr=0.02))):
        a = _run(optimizer, w0, loss)
        b = _run(optimizer, u @ w0 @ v.T, turned_loss)
        follows = torch.allclose(u @ a @ v.T, b, atol=1e-4)
        assert follows == (name == "soap"), name
        assert float(loss(a)) < 0.8 * float(loss(w0))  # and both make progress


def test_eigenbases_of_bad_statistics_do_not_stop_a_fit():
    """Non-finite statistics give no basis (the last one stays); nearly singular ones (a fit's
    first gradients: rank 1, entries ~1e-9 .. 1e9 apart) give an orthonormal one."""
    from ncodec.models.soap import _eigenvectors

    assert _eigenvectors(torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]])) is None
    v = torch.randn(22)
    v[:6] *= 1e-9
    v[6:] *= 1e9
    for stats in (torch.outer(v, v), torch.zeros(22, 22), torch.eye(22) * 1e-30):
        basis = _eigenvectors(stats)
        assert basis is not None and basis.dtype == torch.float32
        assert torch.allclose(basis.T @ basis, torch.eye(22), atol=1e-5)
    w = torch.zeros(4, 4, requires_grad=True)
    opt = Soap([w], every=1)
    for grad in (torch.ones(4, 4), torch.full((4, 4), float("inf")), torch.ones(4, 4)):
        w.grad = grad.clone()
        opt.step()  # an infinite gradient leaves the last bases in place instead of raising
