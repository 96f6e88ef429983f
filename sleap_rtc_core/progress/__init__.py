"""Progress events and the ZMQ bridges to sleap-nn and SLEAP's LossViewer."""
