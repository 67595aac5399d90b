"""The inpainting panel (a small package): :mod:`.request` maps the form to a library call without Qt;
:mod:`.image_page`, :mod:`.plane_page` and :mod:`.bits_page` hold each kind of model's views and
controls; :mod:`.panel` is the panel that runs them on the app's state."""
from .panel import InpaintPanel, qimage_to_array

__all__ = ["InpaintPanel", "qimage_to_array"]
