"""The inpainting panel (a small package): :mod:`.request` maps the form to a library call without Qt;
:mod:`.image_page`, :mod:`.plane_page` and :mod:`.bits_page` hold each kind of model's views and
controls, :mod:`.canvas` the mask canvas and its tools, :mod:`.opening` the opening, dropping and pasting
of images and masks (files read off the GUI thread); :mod:`.panel` is the panel that runs them on the
app's state. ``InpaintPanel`` is imported on first use, so that :mod:`.request` loads without Qt."""

__all__ = ["InpaintPanel", "qimage_to_array"]


def __getattr__(name):
    if name == "InpaintPanel":
        from .panel import InpaintPanel

        return InpaintPanel
    if name == "qimage_to_array":
        from .opening import qimage_to_array

        return qimage_to_array
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
