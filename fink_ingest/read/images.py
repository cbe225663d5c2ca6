"""PNG pictures of stamps, as Fink's ``/api/v1/cutouts`` draws them, with astropy.visualization
and matplotlib.

Fink's options (``apps/routes/v1/ztf/cutouts`` of fink-object-api):

- ``stretch``: ``sigmoid`` (default: the logistic function of the pixel's z-score, so no
  cut level matters), ``linear``, ``sqrt``, ``power``, ``log``, ``asinh`` (astropy
  ``simple_norm``, between the ``pmin`` and ``pmax`` percentiles of the pixels, clipped);
- ``colormap``: a matplotlib colormap name (RGBA picture); none gives an 8-bit grey picture;
- ``convolution_kernel``: ``gauss`` or ``box`` smoothing (astropy.convolution, one-pixel
  kernel width) after the stretch, as Fink applies it;
- the picture has the stamp's size (63x63 for ZTF), one pixel per pixel.
"""
from __future__ import annotations

import io

import numpy as np

from fink_ingest.errors import QueryError

STRETCHES = ("sigmoid", "linear", "sqrt", "power", "log", "asinh")
KERNELS = ("gauss", "box")
KERNEL_WIDTH = 1            # Fink smooths with a 1-pixel kernel (5 pixels wide)
POWER_EXPONENT = 2          # Fink's power stretch: x**2
ASINH_A = 0.1               # astropy's default asinh softening
DEFAULT_PMIN, DEFAULT_PMAX = 0.5, 99.5


def check_display(stretch="sigmoid", colormap=None, pmin=DEFAULT_PMIN, pmax=DEFAULT_PMAX, kernel=None):
    """Validate display options; returns them normalised ``(stretch, colormap, pmin, pmax, kernel)``.

    Raises
    ------
    QueryError
        Naming the option and the allowed values.
    """
    import matplotlib

    stretch = "sigmoid" if stretch in (None, "") else str(stretch)
    if stretch == "arcsinh":
        stretch = "asinh"
    if stretch not in STRETCHES:
        raise QueryError(f"stretch {stretch!r}: expected one of {list(STRETCHES)}")
    if colormap not in (None, ""):
        if str(colormap) not in matplotlib.colormaps:
            raise QueryError(f"colormap {colormap!r}: not a matplotlib colormap (e.g. viridis, Greys, PuBu_r)")
        colormap = str(colormap)
    else:
        colormap = None
    limits = []
    for name, value, default in (("pmin", pmin, DEFAULT_PMIN), ("pmax", pmax, DEFAULT_PMAX)):
        try:
            number = default if value in (None, "") else float(value)
        except (TypeError, ValueError):
            raise QueryError(f"{name} = {value!r}: expected a percentile in [0, 100]") from None
        if isinstance(value, bool) or not 0 <= number <= 100:
            raise QueryError(f"{name} = {value!r}: expected a percentile in [0, 100]")
        limits.append(number)
    if limits[0] >= limits[1]:
        raise QueryError(f"pmin = {limits[0]:g} must be below pmax = {limits[1]:g}")
    if kernel in (None, ""):
        kernel = None
    elif kernel not in KERNELS:
        raise QueryError(f"convolution_kernel {kernel!r}: expected one of {list(KERNELS)}")
    return stretch, colormap, limits[0], limits[1], kernel


def normalise(image, stretch, pmin, pmax):
    """Pixel values mapped to [0, 1] (numpy float array, same shape)."""
    from astropy.visualization import simple_norm

    data = np.nan_to_num(np.asarray(image, dtype=float))
    if stretch == "sigmoid":
        from scipy.special import expit

        std = data.std()
        return expit((data - data.mean()) / std) if std > 0 else np.full(data.shape, 0.5)
    options = {"power": POWER_EXPONENT} if stretch == "power" else {"asinh_a": ASINH_A} if stretch == "asinh" else {}
    norm = simple_norm(data, stretch=stretch, min_percent=pmin, max_percent=pmax, clip=True, **options)
    return np.nan_to_num(np.asarray(norm(data).filled(0), dtype=float))


def smooth(image, kernel):
    """The image convolved with a ``gauss`` or ``box`` kernel (astropy.convolution)."""
    from astropy.convolution import Box2DKernel, Gaussian2DKernel, convolve

    size = 5 * KERNEL_WIDTH
    k = Gaussian2DKernel(KERNEL_WIDTH, x_size=size, y_size=size) if kernel == "gauss" \
        else Box2DKernel(KERNEL_WIDTH, x_size=size, y_size=size)
    return convolve(image, k, boundary="extend")


def png(image, stretch="sigmoid", colormap=None, pmin=DEFAULT_PMIN, pmax=DEFAULT_PMAX, kernel=None):
    """PNG bytes of a stamp.

    Parameters
    ----------
    image : numpy.ndarray, shape (ny, nx)
        Stamp pixels (NaN allowed: drawn as 0 before the stretch).
    stretch, colormap, pmin, pmax, kernel
        Display options (see the module docstring); checked by ``check_display``.

    Returns
    -------
    bytes
        An ``nx`` x ``ny`` PNG: 8-bit grey without colormap, else RGBA.
    """
    from PIL import Image

    stretch, colormap, pmin, pmax, kernel = check_display(stretch, colormap, pmin, pmax, kernel)
    data = normalise(image, stretch, pmin, pmax)
    if kernel:
        data = smooth(data, kernel)
    data = np.clip(data, 0.0, 1.0)
    if colormap:
        import matplotlib

        pixels = matplotlib.colormaps[colormap](data, bytes=True)   # (ny, nx, 4) uint8
    else:
        pixels = np.round(data * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()
