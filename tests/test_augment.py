import math

import pytest
import torch

from dctutor import augment, data


class Fixed(augment.AffineAugmentation):
    """The same affine map [[a, b, tx], [c, d, ty]] for every image."""

    def __init__(self, a, b, c, d, tx=0.0, ty=0.0):
        self.entries, self.p = (a, b, c, d, tx, ty), 1.0

    def _matrices(self, n, x, generator):
        return augment._affine(*(torch.full((n,), v, dtype=x.dtype) for v in self.entries))


def digits(n=16):
    return data.load("mnist-5k", "test").inputs(flat=False)[:n]


def blob(n=4, side=28):
    """Smooth images (a Gaussian bump off centre), so interpolation errors stay small."""
    r = torch.linspace(-1, 1, side)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    img = torch.exp(-((xx - 0.2) ** 2 + (yy + 0.1) ** 2) / 0.1)
    return img.expand(n, 1, side, side).clone()


@pytest.mark.parametrize("name", augment.NAMES)
def test_named_recipes_keep_shape_dtype_and_range(name):
    x = digits()
    out = augment.named(name)(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0 + 1e-6
    assert not torch.equal(out, x)          # every recipe changes something
    assert torch.equal(x, digits())         # and leaves its input alone


@pytest.mark.parametrize("name", augment.NAMES)
def test_seeded_generator_repeats_and_parameters_are_per_image(name):
    x = digits(1).expand(8, 1, 28, 28).contiguous()     # eight copies of one digit
    aug = augment.named(name)
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    c = aug(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # each copy got its own random parameters
    # (binarising at two nearby thresholds can give the same image: 256 grey levels)
    assert len({tuple(img.flatten().tolist()) for img in a}) >= (5 if name == "binarize" else 8)


def test_rotation_by_90_degrees_is_a_quarter_turn():
    x = digits(4)
    out = augment.Rotation((90, 90))(x)
    # pixel centres map onto pixel centres, so bilinear sampling is exact
    assert torch.allclose(out, torch.rot90(x, k=-1, dims=(2, 3)), atol=1e-5)


def test_compose_fuses_affine_maps_in_order():
    x = digits(4)
    fused = augment.Compose(augment.Rotation((30, 30)), augment.Rotation((60, 60)))(x)
    assert torch.allclose(fused, torch.rot90(x, k=-1, dims=(2, 3)), atol=1e-4)
    # order matters for non-commuting maps: compose(a, b) ≈ b(a(x)), not a(b(x))
    a, b = Fixed(1.0, 0.5, 0.0, 1.0), augment.Rotation((40, 40))
    img = blob()
    composed = augment.Compose(a, b)(img)
    assert (composed - b(a(img))).abs().max() < 0.05
    assert (composed - a(b(img))).abs().max() > 0.2


def test_nested_compose_is_flattened():
    c = augment.Compose(augment.Rotation(), augment.Compose(augment.Noise(), augment.Binarize()))
    assert [type(a).__name__ for a in c.augmentations] == ["Rotation", "Noise", "Binarize"]


def test_crop_of_the_whole_image_is_the_identity():
    x = digits(4)
    assert torch.allclose(augment.CropResize(1.0)(x), x, atol=1e-5)


def test_crop_zooms_in_and_stays_inside_the_image():
    ones = torch.ones(32, 1, 28, 28)
    out = augment.CropResize((0.5, 0.8))(ones, torch.Generator().manual_seed(0))
    # the window lies inside the image: no black border comes in (edges aside)
    assert torch.allclose(out[..., 2:-2, 2:-2], torch.ones(32, 1, 24, 24), atol=1e-5)
    # zooming in on a centred square of side 10 makes it bigger
    sq = torch.zeros(1, 1, 28, 28)
    sq[..., 9:19, 9:19] = 1
    assert float(Fixed(2.0, 0.0, 0.0, 2.0)(sq).sum()) == pytest.approx(4 * float(sq.sum()), rel=0.05)


def test_skew_without_shear_or_stretch_is_the_identity():
    x = digits(4)
    assert torch.allclose(augment.Skew(0.0, 0.0)(x), x, atol=1e-5)


def test_rotation_preserves_ink_of_a_centred_blob():
    img = blob()
    out = augment.Rotation(180)(img, torch.Generator().manual_seed(1))
    assert out.sum(dim=(1, 2, 3)).tolist() == pytest.approx(img.sum(dim=(1, 2, 3)).tolist(), rel=0.02)


def test_binarize_gives_zeros_and_ones():
    x = digits()
    out = augment.Binarize((0.3, 0.6))(x, torch.Generator().manual_seed(0))
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    hi = augment.Binarize(0.9)(x)
    lo = augment.Binarize(0.1)(x)
    assert hi.sum() < lo.sum()              # a higher threshold thins the strokes


def test_noise_level_and_clipping():
    x = torch.full((64, 1, 28, 28), 0.5)
    out = augment.Noise((0.1, 0.1))(x, torch.Generator().manual_seed(0))
    assert float((out - x).std()) == pytest.approx(0.1, rel=0.05)
    assert torch.equal(augment.Noise(0.0)(x), x)
    assert 0 <= float(augment.Noise(5.0)(x).min()) and float(augment.Noise(5.0)(x).max()) <= 1


@pytest.mark.parametrize("make", [augment.Rotation, augment.Noise, augment.Binarize,
                                  augment.Skew, augment.CropResize])
def test_probability_p_applies_to_about_that_share_of_images(make):
    x = digits(1).expand(400, 1, 28, 28).contiguous()
    out = make(p=0.5)(x, torch.Generator().manual_seed(0))
    changed = (out - x).abs().flatten(1).max(1).values > 1e-4
    assert 0.4 < float(changed.float().mean()) < 0.6
    assert torch.allclose(make(p=0.0)(x), x, atol=1e-5)


def test_flat_inputs_are_reshaped_by_as_images():
    flat = data.load("mnist-5k", "test").inputs()[:5]
    assert augment.as_images(flat).shape == (5, 1, 28, 28)
    assert augment.as_images(flat.reshape(5, 28, 28)).shape == (5, 1, 28, 28)
    with pytest.raises(ValueError, match="N×784"):
        augment.as_images(torch.zeros(5, 100))


@pytest.mark.parametrize("bad", [torch.zeros(5, 784), torch.zeros(5, 28, 28),
                                 torch.zeros(2, 1, 28, 28, dtype=torch.uint8)])
def test_bad_batches_are_rejected(bad):
    with pytest.raises(ValueError):
        augment.Rotation()(bad)


@pytest.mark.parametrize("make", [
    lambda: augment.Rotation((10, -10)),
    lambda: augment.Rotation(25, p=1.5),
    lambda: augment.Skew(-0.1),
    lambda: augment.CropResize((0.0, 0.5)),
    lambda: augment.CropResize((0.5, 1.2)),
    lambda: augment.Binarize((0.2, 1.5)),
    lambda: augment.Noise(-1.0),
    lambda: augment.Compose(augment.Rotation(), "noise"),
    lambda: augment.named("blur"),
])
def test_bad_parameters_are_rejected(make):
    with pytest.raises(ValueError):
        make()


def test_warp_checks_matrix_shape():
    with pytest.raises(ValueError, match="3×3"):
        augment.warp(torch.zeros(2, 1, 28, 28), torch.eye(3).expand(3, 3, 3))


def test_empty_compose_is_a_copy():
    x = digits(2)
    out = augment.Compose()(x)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_gpu_with_a_gpu_generator():
    x = digits().cuda()
    g = torch.Generator("cuda").manual_seed(0)
    out = augment.named("all")(x, g)
    assert out.device == x.device and out.shape == x.shape
    with pytest.raises(ValueError, match="generator"):
        augment.named("all")(x, torch.Generator().manual_seed(0))


def test_cpu_generator_for_cpu_images_only():
    # a generator on another device type is refused with a clear message (checked on CPU by
    # faking the device attribute)
    class FakeGen:
        device = torch.device("meta")
    with pytest.raises(ValueError, match="generator"):
        augment.Rotation()(digits(2), FakeGen())


def test_angles_are_uniform_in_range():
    rot = augment.Rotation((10, 20))
    x = torch.zeros(1000, 1, 28, 28)
    A = rot.matrices(1000, x, torch.Generator().manual_seed(0))
    angles = torch.atan2(A[:, 1, 0], A[:, 0, 0]) * 180 / math.pi
    assert 10 - 1e-4 <= float(angles.min()) and float(angles.max()) <= 20 + 1e-4
    assert float(angles.mean()) == pytest.approx(15, abs=0.5)
