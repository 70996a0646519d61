"""ConceptExpress token learning: the lookup table, the losses, save/load in diffusers' format, scores."""
import numpy as np
import pytest
import torch

import conceptlab
from conceptlab import express, metrics
from conceptlab.express.tokens import ConceptTokens, emd_loss, supervised_contrastive
from conceptlab.images import to_tensor
from conceptlab.models import Model
from conceptlab.toy import tiny
from conceptlab.worlds import oracle, shapes

SCENE = next(s for s in shapes.scenes("heldout", 20) if len(s.labels) == 2)


@pytest.fixture(scope="module")
def learned(toy):
    return express.learn_tokens(toy, SCENE.image, np.stack(SCENE.masks), steps=10, split_steps=4, g=3, progress=False)


def test_only_the_new_rows_learn_and_the_model_is_untouched(toy, learned):
    before_len = len(toy.tokenizer)
    table = toy.text_encoder.get_input_embeddings().weight.detach().clone()
    flags = [p.requires_grad for p in toy.unet.parameters()]
    again = express.learn_tokens(toy, SCENE.image, np.stack(SCENE.masks), steps=10, split_steps=4, g=3, progress=False)
    assert len(toy.tokenizer) == before_len                                     # the model passed in is not modified
    assert torch.equal(toy.text_encoder.get_input_embeddings().weight, table)
    assert [p.requires_grad for p in toy.unet.parameters()] == flags
    assert torch.equal(again.embeddings, learned.embeddings)                   # deterministic for a seed
    assert learned.tokens == ["<c0>", "<c1>"] and learned.embeddings.shape == (2, table.shape[1])
    model2 = learned.apply(toy)
    new = model2.text_encoder.get_input_embeddings().weight
    assert torch.equal(new[: len(table)], table)                               # every old row as it was
    ids = model2.tokenizer.convert_tokens_to_ids(learned.tokens)
    assert torch.equal(new[ids], learned.embeddings)
    assert model2.unet is toy.unet and len(toy.tokenizer) == before_len
    assert model2.generate("a <c0> and a <c1>", steps=2).size == (32, 32)     # the toy's prompt check knows them


def test_curves_and_split_tokens(learned):
    assert len(learned.curves["masked"]) == 10 and all(np.isfinite(learned.curves["masked"]))
    assert all(c > 0 for c in learned.curves["contrastive"][:4]) and learned.curves["contrastive"][4:] == [0.0] * 6
    assert len(learned.split_similarity) == 4 and len(learned.split_similarity[0]) == 2
    assert any(e > 0 for e in learned.curves["emd"])


def test_recorded_gradients_leave_the_result_unchanged(toy, learned):
    rec = express.learn_tokens(toy, SCENE.image, np.stack(SCENE.masks), steps=10, split_steps=4, g=3, progress=False,
                               record_gradients=True)
    assert torch.equal(rec.embeddings, learned.embeddings)
    assert all(len(rec.curves[f"grad_{k}"]) == 10 for k in ("masked", "contrastive", "emd"))
    assert all(v > 0 for v in rec.curves["grad_masked"] + rec.curves["grad_contrastive"][:4])
    assert rec.curves["grad_contrastive"][4:] == [0.0] * 6                    # no contrastive term after the merge
    assert any(v > 0 for v in rec.curves["grad_emd"])
    bas = express.learn_tokens(toy, SCENE.image, np.stack(SCENE.masks), steps=3, split_merge=False, align=False,
                               joint=False, progress=False, record_gradients=True)
    assert bas.curves["grad_emd"] == [0.0] * 3 and all(v > 0 for v in bas.curves["grad_masked"])


def test_save_load_and_diffusers_reads_the_files(learned, tmp_path):
    paths = learned.save(tmp_path)
    back = ConceptTokens.load(tmp_path)
    assert back.tokens == learned.tokens and torch.equal(back.embeddings, learned.embeddings)
    assert np.array_equal(back.masks, learned.masks) and back.settings == learned.settings
    fresh = conceptlab.load("toy-shapes")
    fresh.pipe.load_textual_inversion([str(p) for p in paths], token=learned.tokens)
    ids = fresh.tokenizer.convert_tokens_to_ids(learned.tokens)
    assert torch.allclose(fresh.text_encoder.get_input_embeddings().weight[ids], learned.embeddings)
    with pytest.raises(FileNotFoundError, match="tokens.json"):
        ConceptTokens.load(tmp_path / "nothing")


def test_schedules(toy):
    """"official": each step every split token (N x g) before the merge, every token and the joint prompt
    (N + 1) after it, every token (N) for Break-A-Scene-dagger; "sampled": one prompt a step."""
    sizes, masks = [], np.stack(SCENE.masks)
    hook = toy.unet.register_forward_pre_hook(lambda mod, args, kw: sizes.append(len(args[0])), with_kwargs=True)
    try:
        official = express.learn_tokens(toy, SCENE.image, masks, steps=5, split_steps=2, g=3, schedule="official",
                                        progress=False)
        assert sizes == [2 * 3] * 2 + [2 + 1] * 3 and official.settings["schedule"] == "official"
        assert all(e > 0 for e in official.curves["emd"])
        sizes.clear()
        express.learn_tokens(toy, SCENE.image, masks, steps=3, split_merge=False, align=False, joint=False,
                             schedule="official", progress=False)
        assert sizes == [2] * 3
        sizes.clear()
        express.learn_tokens(toy, SCENE.image, masks, steps=4, split_steps=2, g=3, progress=False)
        assert sizes == [1] * 4
    finally:
        hook.remove()
    with pytest.raises(ValueError, match="schedule"):
        express.learn_tokens(toy, SCENE.image, masks, steps=4, schedule="every", progress=False)


def test_break_a_scene_dagger_configuration(toy):
    bas = express.learn_tokens(toy, SCENE.image, np.stack(SCENE.masks), steps=4, split_merge=False, align=False,
                               joint=False, progress=False)
    assert bas.split_similarity == [] and bas.curves["emd"] == [0.0] * 4 and bas.curves["contrastive"] == [0.0] * 4


def test_masked_mean_over_the_mask_or_the_latent(toy):
    """Eq. 8 averaged over the whole latent (the authors' code) is the average over the mask times the mask's
    share of the latent (here at the first step, where both runs see the same embedding, t and noise)."""
    one = np.stack(SCENE.masks)[:1]
    kw = dict(steps=1, split_merge=False, align=False, joint=False, progress=False)
    by_mask = express.learn_tokens(toy, SCENE.image, one, **kw)
    by_latent = express.learn_tokens(toy, SCENE.image, one, masked_mean="latent", **kw)
    side = tuple(toy.encode(to_tensor(SCENE.image, toy.image_size)).shape[-2:])
    share = float(torch.nn.functional.interpolate(torch.from_numpy(one).float()[:, None], size=side, mode="area").mean())
    assert 0 < share < 0.5
    assert by_latent.curves["masked"][0] == pytest.approx(by_mask.curves["masked"][0] * share, rel=1e-4)
    assert by_latent.settings["masked_mean"] == "latent" and by_mask.settings["masked_mean"] == "mask"
    with pytest.raises(ValueError, match="masked_mean"):
        express.learn_tokens(toy, SCENE.image, one, masked_mean="sum", **kw)


def test_losses():
    e = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 0, 1, 1])
    assert supervised_contrastive(e, labels) < supervised_contrastive(e, torch.tensor([0, 1, 0, 1]))
    a = torch.zeros(16, requires_grad=True)
    b = torch.zeros(16)
    with torch.no_grad():
        a[0] = 1.0
    b[3] = 1.0                                                                   # 3 cells to the right on a 4x4 grid
    d = emd_loss(a + 0, b, (4, 4))
    assert float(d.detach()) == pytest.approx(3.0) and float(emd_loss(b, b, (4, 4))) == pytest.approx(0.0)
    d.backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()


def test_bad_inputs(toy):
    masks = np.stack(SCENE.masks)
    with pytest.raises(ValueError, match="empty"):
        express.learn_tokens(toy, SCENE.image, np.zeros((1, 32, 32), bool), steps=2, split_steps=1, progress=False)
    with pytest.raises(ValueError, match="masks"):
        express.learn_tokens(toy, SCENE.image, masks[:, :16], steps=2, split_steps=1, progress=False)
    with pytest.raises(ValueError, match="steps"):
        express.learn_tokens(toy, SCENE.image, masks, steps=0, progress=False)
    with pytest.raises(ValueError, match="split_steps"):
        express.learn_tokens(toy, SCENE.image, masks, steps=10, split_steps=10, progress=False)
    with pytest.raises(ValueError, match="SD 1.x/2.x"):
        express.learn_tokens(Model(tiny.sdxl(), "tiny-sdxl"), np.zeros((16, 16, 3), np.uint8), np.ones((1, 16, 16), bool),
                             steps=2, split_steps=1)


def test_concept_scores(toy_clip):
    scenes = [s for s in shapes.scenes("heldout", 12) if len(s.labels) >= 2][:3]
    sources = [(to_tensor(s.image), np.stack(s.masks)) for s in scenes]
    # generations that are the masked sources themselves: perfect similarity and accuracy
    per = [[metrics.masked_region(x, m).repeat(2, 1, 1, 1) for m in masks] for x, masks in sources]
    comp = [x.repeat(2, 1, 1, 1) for x, _ in sources]
    r = metrics.concept_scores(toy_clip, sources, per, comp)
    assert r["sim_i"] == pytest.approx(1.0, abs=1e-5) and r["sim_c"] == pytest.approx(1.0, abs=1e-5)
    assert r["acc_1"] == 1.0 and r["acc_3"] == 1.0
    # every generation is the first scene's first concept: only those are classified right
    wrong = [[per[0][0]] * len(masks) for _, masks in sources]
    r = metrics.concept_scores(toy_clip, sources, wrong, comp)
    n = sum(len(m) for _, m in sources)
    assert r["acc_1"] == pytest.approx(1 / n) and r["sim_i"] < 1.0
    # by label: the perfect generations are right; the wrong ones only where a concept shares the first's label
    labels = [s.labels for s in scenes]
    r = metrics.concept_scores(toy_clip, sources, per, comp, labels)
    assert r["acc_1_label"] == 1.0 and r["acc_3_label"] == 1.0 and r["acc_1"] == 1.0
    r = metrics.concept_scores(toy_clip, sources, wrong, comp, labels)
    flat = [x for s in scenes for x in s.labels]
    assert r["acc_1_label"] == pytest.approx(flat.count(flat[0]) / n)
    with pytest.raises(ValueError, match="one label per concept"):
        metrics.concept_scores(toy_clip, sources, per, comp, [s.labels[:1] for s in scenes])


def test_concept_scores_with_the_objects_alone_as_regions(toy_clip):
    scenes = [s for s in shapes.scenes("heldout", 12) if len(s.labels) >= 2][:3]
    sources = [(to_tensor(s.image), np.stack(s.masks)) for s in scenes]
    alone = [[to_tensor(s.alone(i)) for i in range(len(s.labels))] for s in scenes]
    per = [[a.repeat(2, 1, 1, 1) for a in scene] for scene in alone]       # generations: each object alone, in place
    comp = [x.repeat(2, 1, 1, 1) for x, _ in sources]
    r = metrics.concept_scores(toy_clip, sources, per, comp, regions=alone)
    assert r["sim_i"] == pytest.approx(1.0, abs=1e-5) and r["acc_1"] == 1.0
    # the paper's masked regions (black around the object) are another image: lower similarity
    assert metrics.concept_scores(toy_clip, sources, per, comp)["sim_i"] < 0.9
    with pytest.raises(ValueError, match="one image"):
        metrics.concept_scores(toy_clip, sources, per, comp, regions=[a[:1] for a in alone])


def test_scene_object_alone():
    s = next(s for s in shapes.scenes("heldout", 12) if len(s.labels) >= 2)
    for i, (lab, m) in enumerate(zip(s.labels, s.masks)):
        a = s.alone(i)
        assert a.shape == s.image.shape and a.dtype == np.uint8
        assert [oracle.is_present(a, x) for x in s.labels] == [x == lab for x in s.labels]
        others = np.any([n for k, n in enumerate(s.masks) if k != i], axis=0) & ~m
        assert (a[others] == shapes.background_image(s.background)[others].round()).all()
    with pytest.raises(IndexError, match="does not exist"):
        s.alone(len(s.labels))


def test_the_authors_sinkhorn_has_not_converged():
    """eq. 11 solved as the authors' code does (Sinkhorn, reg 1e-3, 200 iterations) has not converged: its plan
    moves little of the mass (the second marginal is far from b) and its cost is far below the exact EMD; with
    reg 0.05 and enough iterations Sinkhorn comes within 10% of the exact EMD, both marginals met."""
    from conceptlab.express.tokens import emd_loss, sinkhorn_emd

    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        a, b = torch.softmax(3 * torch.randn(64, generator=g), 0), torch.softmax(3 * torch.randn(64, generator=g), 0)
        exact = float(emd_loss(a, b, (8, 8)))
        theirs, plan = sinkhorn_emd(a, b, (8, 8))
        assert float(theirs) < 0.5 * exact
        assert float((plan.sum(0) - b.double()).abs().sum()) > 0.5           # L1 error of the second marginal
        close, plan = sinkhorn_emd(a, b, (8, 8), reg=0.05, iterations=3000)
        assert abs(float(close) - exact) < 0.1 * exact
        assert torch.allclose(plan.sum(0), b.double(), atol=1e-4) and torch.allclose(plan.sum(1), a.double(), atol=1e-4)


# ------------------------------------------------------------------------------------------ the authors' training
class AuthorsSinkhornOT(torch.autograd.Function):
    """emd/emd.py's SinkhornOT @db1dc61, re-derived for this test: log-domain Sinkhorn in float32 from uniform
    potentials; forward the transport cost; backward the potentials times lambda."""

    @staticmethod
    def forward(ctx, mu, nu, dist, lam, iterations):
        log_mu, log_nu = mu.log(), nu.log()
        log_u = torch.full_like(mu, -np.log(len(mu)))
        log_v = torch.full_like(nu, -np.log(len(nu)))
        for _ in range(iterations):
            log_v = log_nu - torch.logsumexp(-dist / lam + log_u[:, None], 0)
            log_u = log_mu - torch.logsumexp(-dist.t() / lam + log_v[:, None], 0)
        ctx.save_for_backward(log_u, log_v)
        ctx.lam = lam
        return (torch.exp(log_u[:, None] - dist / lam + log_v[None, :]) * dist).sum()

    @staticmethod
    def backward(ctx, grad):
        log_u, log_v = ctx.saved_tensors
        return grad * log_u * ctx.lam, grad * log_v * ctx.lam, None, None, None


def authors_training(model, image, masks, steps: int, split_steps: int, g: int, seed: int) -> torch.Tensor:
    """ConceptExpress's token training (train.py, TokenManager, SupConLoss, wasser_loss @db1dc61, train.sh's
    settings), re-derived for this test on one image copy in float32, drawing from one generator in the order
    conceptlab does: the flip each step; per update the posterior sample, t, the noise. Placeholder p = j n + i
    (concept i, split j) starts as vocabulary row V - 100 + p (mod V: the tiny vocabulary is smaller than their
    100 rows). Returns the merged tokens (n, D)."""
    import copy

    import torch.nn.functional as F

    from conceptlab.hooks import LiveAttention

    n = len(masks)
    gen = torch.Generator().manual_seed(seed)
    tok, enc = copy.deepcopy(model.tokenizer), copy.deepcopy(model.text_encoder)
    vocab = len(tok)
    names = [f"<p{p}>" for p in range(n * g)]
    tok.add_tokens(names)
    enc.resize_token_embeddings(len(tok), mean_resizing=False)
    ids = tok.convert_tokens_to_ids(names)
    weight = enc.get_input_embeddings().weight
    enc.requires_grad_(False)
    with torch.no_grad():
        for p in range(n * g):
            weight[ids[p]] = weight[(vocab - 100 + p) % vocab]
    orig = weight.detach().clone()
    weight.requires_grad_(True)
    placeholder = torch.zeros(len(weight), dtype=torch.bool)
    placeholder[ids] = True
    opt = torch.optim.AdamW([weight], lr=5e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)
    x = to_tensor(image, model.image_size)
    m = torch.from_numpy(masks).float()[:, None]
    m_lat = F.interpolate(m, size=model.latent_shape[1:], mode="area")[:, 0]            # (n, h, w)
    cells = torch.stack(torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij"), -1).reshape(-1, 2).float()
    dist = torch.cdist(cells, cells)
    used = list(range(n * g))
    flags = [q.requires_grad for q in model.unet.parameters()]
    model.unet.requires_grad_(False)
    with LiveAttention(model.unet, kind="cross") as listen:
        for step in range(steps):
            if step == split_steps:                                 # merge_tokens and the mean into rows -A + i
                with torch.no_grad():
                    for i in range(n):
                        weight[ids[i]] = sum(weight[ids[i + j * n]] for j in range(g)) / g
                used = list(range(n))
            split = step < split_steps
            flip = int(torch.randint(2, (1,), generator=gen))
            x_in, m_in = (torch.flip(x, [-1]), torch.flip(m_lat, [-1])) if flip else (x, m_lat)
            prompts = [[p] for p in used] + ([] if split or n == 1 else [used])
            for ps in prompts:
                with torch.no_grad():
                    latents = model.vae.encode(x_in).latent_dist.sample(generator=gen) * model.vae.config.scaling_factor
                timesteps = torch.randint(0, 1000, (1,), generator=gen)
                noise = torch.randn(latents.shape, generator=gen)
                noisy = model.scheduler.add_noise(latents, noise, timesteps)
                prompt_ids = tok("a " + " and ".join(names[p] for p in ps), padding="max_length",
                                 max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
                model_pred = model.unet(noisy, timesteps, enc(prompt_ids)[0]).sample
                max_mask = torch.max(m_in[[p % n for p in ps]], dim=0).values
                loss = F.mse_loss(model_pred * max_mask, noise * max_mask, reduction="mean")
                attn_loss = 0.0
                for p in ps:
                    feat = torch.from_numpy(masks[p % n]).float()                        # f_i: the mask itself
                    feat = F.interpolate((feat.flip(-1) if flip else feat)[None, None], size=(16, 16))[0, 0]
                    pos = int((prompt_ids[0] == ids[p]).nonzero().item())
                    maps = [a[0, :, pos] for a in listen.maps.values() if a.shape[1] == 256]
                    attn = torch.stack(maps).mean(0)
                    x1, x2 = feat.reshape(-1) / feat.sum(), attn / attn.sum()
                    attn_loss = attn_loss + AuthorsSinkhornOT.apply(x1.float(), x2.float(), dist, 1e-3, 200)
                loss = loss + 1e-5 * attn_loss
                if split:
                    emb = F.normalize(weight[[ids[p] for p in used]], dim=-1)
                    labels = torch.tensor([p % n for p in used])
                    logits = emb @ emb.T / 0.07
                    logits = logits - logits.max(1, keepdim=True).values.detach()
                    not_self = 1 - torch.eye(len(emb))
                    pos_mask = (labels[:, None] == labels[None, :]).float() * not_self
                    log_prob = logits - torch.log((torch.exp(logits) * not_self).sum(1, keepdim=True))
                    loss = loss + 1e-3 * (-((pos_mask * log_prob).sum(1) / pos_mask.sum(1))).mean()
                loss.backward()
                opt.step()
                opt.zero_grad()
                with torch.no_grad():
                    weight[~placeholder] = orig[~placeholder]
    for q, flag in zip(model.unet.parameters(), flags):
        q.requires_grad_(flag)
    return weight.detach()[ids[:n]]


def test_the_authors_preset_is_the_authors_training(tiny):
    """learn_tokens(**express.AUTHORS_TOKENS) ends with the tokens of the authors' loop re-derived (their order of
    updates, one optimizer through the merge, the contrastive term at each update, vocabulary initialization,
    their Sinkhorn and its gradient), within 1e-5; it differs from our default schedule."""
    masks = np.stack(SCENE.masks)
    theirs = authors_training(tiny, SCENE.image, masks, steps=4, split_steps=2, g=2, seed=3)
    kw = dict(express.AUTHORS_TOKENS, g=2)
    ours = express.learn_tokens(tiny, SCENE.image, masks, steps=4, split_steps=2, seed=3, progress=False, **kw)
    assert (ours.embeddings - theirs).abs().max() <= 1e-5
    default = express.learn_tokens(tiny, SCENE.image, masks, steps=4, split_steps=2, g=2, seed=3, progress=False)
    assert (default.embeddings - theirs).abs().max() > 1e-3
    assert len(ours.curves["masked"]) == 2 * 4 + 2 * 3                    # one update per prompt: 2 x 4, then 2 x 3
