"""Pure tensor functions on images: Bayer mosaics, colour, the ISP and quality metrics."""
